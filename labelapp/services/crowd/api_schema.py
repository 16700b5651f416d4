"""OpenAPI 3.1 description of the volunteer JSON API (served at /api/openapi.json)."""

from __future__ import annotations

from django.conf import settings

from labelapp.models import Vote
from labelapp.services.crowd.votes import MAX_EXCLUDE, MAX_RESPONSE_MS


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _ok(description: str, ref: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


CSRF = [{"csrfToken": []}]


def openapi_schema() -> dict:
    undo_s = settings.VOTE_UNDO_WINDOW_S
    limit = f"{settings.VOTE_RATE_LIMIT} votes per {settings.VOTE_RATE_WINDOW_S} s"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Dark Energy Explorers volunteer API",
            "version": "1",
            "description": (
                "Used by the classify page. The volunteer is the session (anonymous) or the "
                "logged-in account. Writes are POSTs protected by CSRF: send the `csrftoken` "
                "cookie (set by GET /api/next/) back in an `X-CSRFToken` header. Errors are "
                '`{"error": {"code", "message"}}`.'
            ),
        },
        "paths": {
            "/api/next/": {
                "get": {
                    "operationId": "nextCandidates",
                    "summary": "The next candidate(s) to classify",
                    "description": (
                        "Active candidates this volunteer has not answered, by priority, with "
                        "gold-standard candidates mixed in (40% for the first 20 "
                        "classifications, 30% up to 40, 20% up to 60, then 10%). An empty "
                        "list means there is nothing left for this volunteer."
                    ),
                    "parameters": [
                        {
                            "name": "count",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": 3},
                        },
                        {
                            "name": "exclude",
                            "in": "query",
                            "description": (
                                "comma-separated detectids the page already holds (at most "
                                f"{MAX_EXCLUDE})"
                            ),
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _ok("candidates", "NextResponse"),
                        "400": _error("bad parameters"),
                    },
                }
            },
            "/api/votes/": {
                "post": {
                    "operationId": "submitVote",
                    "summary": "Answer 'is there a real emission line in the middle?'",
                    "description": (
                        "One vote per volunteer and candidate: submitting again (two tabs, "
                        "a retry) returns the vote already recorded with status 200 and "
                        "`created: false`. The answer carries the next candidate(s) so the "
                        f"page needs one round trip per answer. Rate limit: {limit}, and "
                        "per client address. A vote needs the `token` that came with its "
                        "candidate from this session (served candidates only)."
                    ),
                    "security": CSRF,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/VoteRequest"}
                            }
                        },
                    },
                    "responses": {
                        "201": _ok("vote recorded", "VoteResponse"),
                        "200": _ok("this vote was already recorded (repeat)", "VoteResponse"),
                        "400": _error("invalid answer, reason or field"),
                        "403": _error("CSRF check failed, or not_served: no valid token"),
                        "404": _error("no candidate with this detectid"),
                        "409": _error("the candidate is retired or waiting for an expert"),
                        "429": _error("rate limit reached (see Retry-After)"),
                    },
                }
            },
            "/api/votes/undo/": {
                "post": {
                    "operationId": "undoLastVote",
                    "summary": f"Take back your last answer (within {undo_s} s)",
                    "security": CSRF,
                    "responses": {
                        "200": _ok("the answer was taken back", "UndoResponse"),
                        "403": _error("CSRF check failed"),
                        "404": _error(f"no answer of yours from the last {undo_s} s"),
                    },
                }
            },
            "/api/votes/reason/": {
                "post": {
                    "operationId": "setVoteReason",
                    "summary": "Say why you answered 'no' (optional)",
                    "security": CSRF,
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["detectid", "reason"],
                                    "properties": {
                                        "detectid": {"type": "integer"},
                                        "reason": {"enum": Vote.Reason.values},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": (
                                "reason saved; at level 3 it is also the follow-up task's "
                                "answer (artefact_recorded: true), kept per candidate as a "
                                "training target"
                            )
                        },
                        "400": _error("invalid reason, or the answer was not 'no'"),
                        "403": _error("CSRF check failed"),
                        "404": _error("you have no answer for this candidate"),
                    },
                }
            },
            "/api/candidates/{detectid}/spectrum/": {
                "get": {
                    "operationId": "candidateSpectrum",
                    "summary": "Plotly figure of the 1D spectrum around the line, with 1σ band",
                    "parameters": [
                        {
                            "name": "detectid",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "plotly figure: {data, layout}",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "404": {"description": "no such candidate"},
                    },
                }
            },
            "/candidates/{detectid}/cutout.png": {
                "get": {
                    "operationId": "candidateCutout",
                    "summary": "Summed 2D cutout above the 4 fiber cutouts, line marked (PNG)",
                    "parameters": [
                        {
                            "name": "detectid",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "integer"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "PNG", "content": {"image/png": {}}},
                        "404": {"description": "no such candidate"},
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "csrfToken": {"type": "apiKey", "in": "header", "name": "X-CSRFToken"}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message"],
                            "properties": {
                                "code": {
                                    "enum": [
                                        "invalid",
                                        "unknown_candidate",
                                        "not_in_queue",
                                        "rate_limited",
                                        "nothing_to_undo",
                                        "csrf",
                                    ]
                                },
                                "message": {"type": "string"},
                                "retry_after_s": {"type": "integer"},
                            },
                        }
                    },
                },
                "Candidate": {
                    "type": "object",
                    "required": ["detectid", "wave", "cutout_url", "spectrum_url", "token"],
                    "properties": {
                        "detectid": {"type": "integer"},
                        "wave": {"type": "number", "description": "line wavelength (Å)"},
                        "cutout_url": {"type": "string"},
                        "spectrum_url": {"type": "string"},
                        "token": {
                            "type": "string",
                            "description": "send it back with the vote on this candidate",
                        },
                    },
                },
                "VolunteerSummary": {
                    "type": "object",
                    "properties": {
                        "n_votes": {"type": "integer"},
                        "gold_rate": {"type": "number"},
                        "streak_days": {"type": "integer"},
                        "level": {
                            "type": "integer",
                            "description": "level by shown skill (1-3), see /me/",
                        },
                    },
                },
                "NextResponse": {
                    "type": "object",
                    "properties": {
                        "candidates": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Candidate"},
                        },
                        "volunteer": {"$ref": "#/components/schemas/VolunteerSummary"},
                    },
                },
                "VoteRequest": {
                    "type": "object",
                    "required": ["detectid", "answer", "token"],
                    "properties": {
                        "detectid": {"type": "integer"},
                        "token": {"type": "string", "description": "the candidate's token"},
                        "answer": {"enum": Vote.Answer.values},
                        "reason": {"enum": ["", *Vote.Reason.values]},
                        "response_ms": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": MAX_RESPONSE_MS,
                        },
                        "client": {"enum": Vote.Client.values},
                        "exclude": {
                            "type": "array",
                            "items": {"type": "integer"},
                            "maxItems": MAX_EXCLUDE,
                            "description": "detectids the page holds; not returned as next",
                        },
                        "next": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 3,
                            "description": "how many next candidates to return (default 1)",
                        },
                    },
                },
                "VoteResponse": {
                    "type": "object",
                    "properties": {
                        "created": {"type": "boolean"},
                        "vote": {
                            "type": "object",
                            "properties": {
                                "detectid": {"type": "integer"},
                                "answer": {"enum": Vote.Answer.values},
                                "reason": {"type": "string"},
                            },
                        },
                        "undo_until": {"type": "string", "format": "date-time"},
                        "level_change": {
                            "description": (
                                "only when this gold answer moved the volunteer's level"
                            ),
                            "type": "object",
                            "properties": {
                                "from": {"type": "integer"},
                                "to": {"type": "integer"},
                                "promoted": {"type": "boolean"},
                                "message": {"type": "string"},
                            },
                        },
                        "feedback": {
                            "description": (
                                "only for a yes/no on a gold-standard candidate (then final)"
                            ),
                            "oneOf": [
                                {"type": "null"},
                                {
                                    "type": "object",
                                    "properties": {
                                        "correct": {"type": "boolean"},
                                        "is_real": {"type": "boolean"},
                                        "kind": {"type": "string"},
                                        "text": {"type": "string"},
                                    },
                                },
                            ],
                        },
                        "next": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/Candidate"},
                        },
                        "volunteer": {"$ref": "#/components/schemas/VolunteerSummary"},
                    },
                },
                "UndoResponse": {
                    "type": "object",
                    "properties": {
                        "undone": {
                            "allOf": [{"$ref": "#/components/schemas/Candidate"}],
                            "properties": {"answer": {"enum": Vote.Answer.values}},
                        },
                        "volunteer": {"$ref": "#/components/schemas/VolunteerSummary"},
                    },
                },
            },
        },
    }
