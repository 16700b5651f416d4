"""HETDEX-like survey simulator (physics in ``shared/SIMULATOR.md``).

>>> from mlcore.simulator import simulate_survey
>>> survey = simulate_survey(2000, seed=1, field="cosmos")
"""

from mlcore.simulator.core import SIMULATOR_VERSION, simulate_survey, type_quotas
from mlcore.simulator.params import FIELD_PARAMS, FieldParams, SimParams
from mlcore.simulator.scenarios import HELD_BACK, SCENARIOS, apply_scenario

__all__ = [
    "FIELD_PARAMS",
    "HELD_BACK",
    "SCENARIOS",
    "apply_scenario",
    "SIMULATOR_VERSION",
    "FieldParams",
    "SimParams",
    "simulate_survey",
    "type_quotas",
]
