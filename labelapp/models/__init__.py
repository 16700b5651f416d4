"""Database models, one module per area. Survey pixels live in the cutout store, not here."""

from labelapp.models.aggregation import (
    AggregationRun,
    ConsensusState,
    Label,
    RetirementEvent,
    VolunteerSkill,
)
from labelapp.models.collections import Collection, CollectionItem, Favourite
from labelapp.models.console import AuditEvent, CampaignSettings, ScienceToken
from labelapp.models.levels import ArtefactAnswer
from labelapp.models.loop import Round, RoundCandidate, ScoreChunk, TaskProgress
from labelapp.models.ml import (
    BatchAdaptation,
    CandidateScore,
    ModelVersion,
    PretrainedEncoder,
    ShiftReport,
)
from labelapp.models.news import NewsItem
from labelapp.models.survey import (
    Candidate,
    CandidateTruth,
    ExternalScore,
    IngestBatch,
    WorkerHeartbeat,
)
from labelapp.models.talk import (
    Board,
    Comment,
    CommentHashtag,
    Flag,
    Hashtag,
    Notification,
    Report,
    Suspension,
    Thread,
)
from labelapp.models.volunteers import GoldStandard, HoldoutLabel, Volunteer, Vote
from labelapp.models.zooniverse import (
    ZooniverseClassification,
    ZooniverseComparison,
    ZooniverseImport,
    ZooniverseSubject,
    ZooniverseVolunteer,
)

__all__ = [
    "AggregationRun",
    "ArtefactAnswer",
    "AuditEvent",
    "BatchAdaptation",
    "Board",
    "CampaignSettings",
    "ExternalScore",
    "Candidate",
    "CandidateScore",
    "CandidateTruth",
    "Collection",
    "CollectionItem",
    "Comment",
    "CommentHashtag",
    "ConsensusState",
    "Favourite",
    "Flag",
    "GoldStandard",
    "Hashtag",
    "HoldoutLabel",
    "IngestBatch",
    "Label",
    "ModelVersion",
    "Notification",
    "PretrainedEncoder",
    "Report",
    "NewsItem",
    "RetirementEvent",
    "Round",
    "RoundCandidate",
    "ScienceToken",
    "ScoreChunk",
    "ShiftReport",
    "Suspension",
    "TaskProgress",
    "Thread",
    "Volunteer",
    "VolunteerSkill",
    "Vote",
    "WorkerHeartbeat",
    "ZooniverseClassification",
    "ZooniverseComparison",
    "ZooniverseImport",
    "ZooniverseSubject",
    "ZooniverseVolunteer",
]
