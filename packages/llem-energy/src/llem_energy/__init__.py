"""llem_energy: NVML and RAPL energy readers, power sampling, idle baseline, throttling,
environment snapshot and measurement warnings.

Depends on ``llem_schema`` (and nvidia-ml-py), never on torch, a backend or persistence.
"""

from llem_energy.errors import EnergyError

__all__ = ["EnergyError"]
