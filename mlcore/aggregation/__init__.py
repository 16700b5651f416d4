"""Vote aggregation: majority vote, Dawid-Skene EM, online SWAP, retirement, value of a vote.

All inputs are flat vote arrays (:class:`VoteTable`); all work is ``np.bincount`` over them,
proportional to the number of votes. 'Not sure' votes (:data:`NOT_SURE`) are dropped when a
table is built: they say nothing about the label. Regime index per candidate: 0 = low S/N
(4.8 <= sn <= 5.5), 1 = high (:func:`regime_index`).
"""

from mlcore.aggregation.dawid_skene import DEFAULT_MODEL_EDGES, dawid_skene, model_llr
from mlcore.aggregation.information import InformationMeasure, expected_information
from mlcore.aggregation.majority import majority_vote
from mlcore.aggregation.retirement import (
    ACTIVE,
    EXPERT,
    RETIRED,
    STATES,
    FixedCountRule,
    RetirementRule,
)
from mlcore.aggregation.skills import SkillPrior
from mlcore.aggregation.swap import (
    OnlineSwap,
    VoteOutcome,
    log_odds_of,
    posterior_of,
    skill_update,
    swap_update,
    vote_llr,
)
from mlcore.aggregation.votes import (
    N_REGIMES,
    NOT_SURE,
    REGIME_HIGH,
    REGIME_LOW,
    REGIME_NAMES,
    AggregateResult,
    ModelConfusion,
    VolunteerSkills,
    VoteTable,
    regime_index,
)

__all__ = [
    "ACTIVE",
    "DEFAULT_MODEL_EDGES",
    "EXPERT",
    "NOT_SURE",
    "N_REGIMES",
    "REGIME_HIGH",
    "REGIME_LOW",
    "REGIME_NAMES",
    "RETIRED",
    "STATES",
    "AggregateResult",
    "FixedCountRule",
    "InformationMeasure",
    "ModelConfusion",
    "OnlineSwap",
    "RetirementRule",
    "SkillPrior",
    "VolunteerSkills",
    "VoteOutcome",
    "VoteTable",
    "dawid_skene",
    "expected_information",
    "log_odds_of",
    "majority_vote",
    "model_llr",
    "posterior_of",
    "regime_index",
    "skill_update",
    "swap_update",
    "vote_llr",
]
