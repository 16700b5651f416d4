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
from labelapp.models.ml import CandidateScore, ModelVersion, ShiftReport
from labelapp.models.survey import Candidate, CandidateTruth, IngestBatch, WorkerHeartbeat
from labelapp.models.volunteers import GoldStandard, HoldoutLabel, Volunteer, Vote
from labelapp.models.zooniverse import (
    ZooniverseClassification,
    ZooniverseImport,
    ZooniverseSubject,
    ZooniverseVolunteer,
)

__all__ = [
    "AggregationRun",
    "ArtefactAnswer",
    "AuditEvent",
    "CampaignSettings",
    "Candidate",
    "CandidateScore",
    "CandidateTruth",
    "Collection",
    "CollectionItem",
    "ConsensusState",
    "Favourite",
    "GoldStandard",
    "HoldoutLabel",
    "IngestBatch",
    "Label",
    "ModelVersion",
    "RetirementEvent",
    "Round",
    "RoundCandidate",
    "ScienceToken",
    "ScoreChunk",
    "ShiftReport",
    "TaskProgress",
    "Volunteer",
    "VolunteerSkill",
    "Vote",
    "WorkerHeartbeat",
    "ZooniverseClassification",
    "ZooniverseImport",
    "ZooniverseSubject",
    "ZooniverseVolunteer",
]
