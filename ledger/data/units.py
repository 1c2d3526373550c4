"""Physical units a data contract may name, and conversions between them.

Pure: no I/O. A unit belongs to one quantity (temperature, length, …); every unit
of a quantity converts to and from that quantity's base unit with an affine map
``base = value * scale + offset``. Temperature needs the offset; the others are
plain scales. Spellings are case-insensitive and a few aliases are accepted
(``C``, ``degC``, ``celsius``, ``°C`` are one unit).
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.errors import InputError


@dataclass(frozen=True, slots=True)
class Unit:
    symbol: str
    quantity: str
    scale: float
    offset: float = 0.0

    def to_base(self, value: float) -> float:
        return value * self.scale + self.offset

    def from_base(self, value: float) -> float:
        return (value - self.offset) / self.scale


_UNITS: tuple[tuple[Unit, tuple[str, ...]], ...] = (
    # temperature, base kelvin
    (Unit("K", "temperature", 1.0), ("k", "kelvin", "degk")),
    (Unit("C", "temperature", 1.0, 273.15), ("c", "degc", "celsius", "°c", "deg_c")),
    (Unit("F", "temperature", 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0), ("f", "degf", "fahrenheit", "°f", "deg_f")),
    # length, base metre
    (Unit("m", "length", 1.0), ("m", "metre", "meter", "metres", "meters")),
    (Unit("mm", "length", 1e-3), ("mm", "millimetre", "millimeter")),
    (Unit("cm", "length", 1e-2), ("cm", "centimetre", "centimeter")),
    (Unit("km", "length", 1e3), ("km", "kilometre", "kilometer")),
    (Unit("in", "length", 0.0254), ("in", "inch", "inches")),
    (Unit("ft", "length", 0.3048), ("ft", "foot", "feet")),
    # rotational speed, base radian per second
    (Unit("rad/s", "rotational speed", 1.0), ("rad/s", "rad_per_s")),
    (Unit("rpm", "rotational speed", 2.0 * 3.141592653589793 / 60.0), ("rpm", "r/min", "rev/min")),
    (Unit("rps", "rotational speed", 2.0 * 3.141592653589793), ("rps", "r/s", "rev/s", "hz")),
    # mass, base kilogram
    (Unit("kg", "mass", 1.0), ("kg", "kilogram", "kilograms")),
    (Unit("g", "mass", 1e-3), ("g", "gram", "grams")),
    (Unit("lb", "mass", 0.45359237), ("lb", "lbs", "pound", "pounds")),
    # time, base second
    (Unit("s", "time", 1.0), ("s", "sec", "second", "seconds")),
    (Unit("ms", "time", 1e-3), ("ms", "millisecond", "milliseconds")),
    (Unit("min", "time", 60.0), ("min", "minute", "minutes")),
    (Unit("h", "time", 3600.0), ("h", "hr", "hour", "hours")),
    # torque, base newton metre
    (Unit("Nm", "torque", 1.0), ("nm", "n·m", "n*m", "n.m", "newton_metre")),
)

_BY_SPELLING: dict[str, Unit] = {alias: unit for unit, aliases in _UNITS for alias in aliases}


def lookup(spelling: str) -> Unit | None:
    """The unit spelled ``spelling``, or None when this module does not know it."""
    return _BY_SPELLING.get(spelling.strip().lower())


def same_unit(a: str | None, b: str | None) -> bool:
    """True when two spellings name one unit (or both are unitless)."""
    if a is None or b is None:
        return a is None and b is None
    if a.strip().lower() == b.strip().lower():
        return True
    ua, ub = lookup(a), lookup(b)
    return ua is not None and ua == ub


def converter(source: str, target: str):
    """A function converting values in ``source`` units to ``target`` units.

    Raises :class:`InputError` when either unit is unknown or they measure
    different quantities: a silent guess would corrupt the data."""
    if same_unit(source, target):
        return lambda value: value
    src, dst = lookup(source), lookup(target)
    if src is None or dst is None:
        unknown = source if src is None else target
        raise InputError(f"no known conversion from {source!r} to {target!r} (unknown unit {unknown!r})")
    if src.quantity != dst.quantity:
        raise InputError(f"cannot convert {source!r} ({src.quantity}) to {target!r} ({dst.quantity})")
    return lambda value: dst.from_base(src.to_base(value))
