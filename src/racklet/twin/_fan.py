"""A 5 V PWM fan with a tachometer, on the BMC board of one unit.

The rotor follows the PWM duty with a first-order lag: at constant duty its speed settles at
``rated_rpm × duty`` with time constant τ (inertia against motor torque). The step is the
exact solution, so long steps at a fast ``--speed`` stay stable. A stuck rotor (:meth:`stall`,
the fault hook) stops dead and its tachometer reads 0 whatever the duty. The airflow it
produces is what the thermal model sees (:attr:`airflow`); the fan's own few hundred
milliwatts come from the BMC board's supply, not the unit's, so the unit's meter ignores it.
The fan's draw follows the affinity laws (power ∝ speed³, from ``rated_watts`` at full speed)
and :attr:`energy_joules` integrates it exactly: the ground truth a fan or busbar meter (the
RMC's) is checked against.
"""

from __future__ import annotations

import math


class TwinFan:
    """One fan: the HAL's :class:`racklet.hw.Fan` over a simulated rotor."""

    def __init__(
        self,
        name: str,
        rated_rpm: float,
        time_constant_seconds: float,
        rated_watts: float = 0.0,
    ) -> None:
        if rated_rpm <= 0 or time_constant_seconds <= 0 or rated_watts < 0:
            raise ValueError("rated_rpm and time_constant_seconds must be positive")
        self.rated_watts = rated_watts
        """Electrical draw at rated speed (what a rack fan takes from the busbar)."""
        self.name = name
        self.rated_rpm = rated_rpm
        self.time_constant = time_constant_seconds
        self.rated_watts = rated_watts
        self.energy_joules = 0.0
        """Ground truth: the exact integral of the fan's draw over simulated time."""
        self.stalled = False
        self._duty = 0.0
        self._rpm = 0.0

    # -- the HAL's Fan --------------------------------------------------------------------

    def set_duty_percent(self, percent: float) -> None:
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"fan duty must be within 0..100 %, got {percent}")
        self._duty = float(percent)

    def duty_percent(self) -> float:
        return self._duty

    def rpm(self) -> float:
        """What the tachometer counts (whole revolutions per minute)."""
        return float(round(self._rpm))

    # -- physics and fault hooks ------------------------------------------------------------

    @property
    def airflow(self) -> float:
        """Airflow as a fraction of the rated fan's, 0.0 to 1.0 (proportional to speed)."""
        return self._rpm / self.rated_rpm

    @property
    def power_watts(self) -> float:
        """The motor's draw now (a stalled rotor's locked-rotor current is not modelled)."""
        return self.rated_watts * min(1.0, self.airflow) ** 3

    def step(self, seconds: float) -> None:
        """Advance the rotor by ``seconds`` of simulated time at the present duty."""
        if seconds <= 0:
            return
        if self.stalled:
            self._rpm = 0.0
            return
        # Exact energy over the step: rpm(t) = target + (rpm0 - target) e^(-t/τ), power ∝ rpm³.
        target = self.rated_rpm * self._duty / 100.0
        start, tau = self._rpm, self.time_constant
        self._rpm = target + (start - target) * math.exp(-seconds / tau)
        self.energy_joules += self.rated_watts * _cube_integral(
            target / self.rated_rpm, (start - target) / self.rated_rpm, tau, seconds
        )

    def stall(self) -> None:
        """Fault hook: the rotor jams (a cable in the blades, a seized bearing)."""
        self.stalled = True
        self._rpm = 0.0

    def free(self) -> None:
        """Undo :meth:`stall`: the rotor spins up again from rest."""
        self.stalled = False


def _cube_integral(a: float, b: float, tau: float, t: float) -> float:
    """∫₀ᵗ (a + b·e^(-s/τ))³ ds, in closed form."""

    def term(k: int) -> float:  # ∫₀ᵗ e^(-k s/τ) ds
        return t if k == 0 else tau / k * (1.0 - math.exp(-k * t / tau))

    return a**3 * term(0) + 3 * a**2 * b * term(1) + 3 * a * b**2 * term(2) + b**3 * term(3)
