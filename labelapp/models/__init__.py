"""Database models, one module per area. Survey pixels live in the cutout store, not here."""

from labelapp.models.survey import Candidate, CandidateTruth, IngestBatch, WorkerHeartbeat

__all__ = ["Candidate", "CandidateTruth", "IngestBatch", "WorkerHeartbeat"]
