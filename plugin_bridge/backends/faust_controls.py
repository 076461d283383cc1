"""A chain as one Faust program whose predicted parameters are live controls (for plugins).

`faust_codegen.chain_program` bakes every value into the code for one sample rate; a DAW plugin
needs the opposite: the parameters a model predicts stay adjustable, the sample rate is the
host's. Here each predicted parameter becomes an ``hslider`` (range and default from its
`ParamSpec` and the mix's value) and every coefficient is computed in Faust from the controls and
``ma.SR`` with the same formulas as `plugin_bridge.backends.dsp` (JUCE's), so that the compiled
program renders what the numpy and pedalboard backends render.

Controls are smoothed (`smooth`: a one-pole of about 5 ms, ``si.smoo``, acting on the distance
from the mix's value, so the zero state of Faust's recursions is "at the mix's value" and the
first samples match an offline render). Delay times and discrete values are not smoothed.

Not smoothed and not adjustable: the limiter's look-ahead (it sets the plugin's latency, which a
host reads once). Latency in samples at any rate is `ControlledProgram.latency_samples`.

The program is meant to be compiled with ``faust -double`` (coefficients in float64).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..effects import MAX_FREQUENCY_FRACTION, Effect
from ..errors import BackendError
from ..params import ParamSpec
from .dsp.reverb import ALLPASS_TUNINGS, COMB_TUNINGS, STEREO_SPREAD
from .faust_codegen import HELPERS, REVERB_INPUT_GAIN, faust_number, limiter_lookahead_samples

#: The highest sample rate (Hz) the delay lines are sized for.
MAX_SAMPLE_RATE = 192000

_CONTROL_HELPERS = {
    "smooth": (
        "// Parameter smoothing (~5 ms one-pole) around the mix's value d: zero state = at d.\n"
        "smooth(d) = -(d) : si.smoo : +(d);"
    ),
    "eq": (
        "// RBJ cookbook biquads as JUCE computes them (plugin_bridge.backends.dsp.filters);\n"
        "// f in Hz (kept below 0.45 x SR), g in dB, q the cookbook Q.\n"
        "eqw(f) = 2.0 * ma.PI * max(min(f, "
        + faust_number(MAX_FREQUENCY_FRACTION)
        + " * ma.SR), 2.0) / ma.SR;\n"
        "eqa(g) = sqrt(pow(10.0, g / 20.0));\n"
        "lowshelf(f, g, q) = fi.tf22t(b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0)\n"
        "with {\n"
        "  A = eqa(g); c = cos(eqw(f)); beta = sin(eqw(f)) * sqrt(A) / q;\n"
        "  b0 = A * ((A + 1.0) - (A - 1.0) * c + beta); b1 = A * 2.0 * ((A - 1.0) - (A + 1.0) * c);\n"
        "  b2 = A * ((A + 1.0) - (A - 1.0) * c - beta); a0 = (A + 1.0) + (A - 1.0) * c + beta;\n"
        "  a1 = -2.0 * ((A - 1.0) + (A + 1.0) * c); a2 = (A + 1.0) + (A - 1.0) * c - beta;\n"
        "};\n"
        "highshelf(f, g, q) = fi.tf22t(b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0)\n"
        "with {\n"
        "  A = eqa(g); c = cos(eqw(f)); beta = sin(eqw(f)) * sqrt(A) / q;\n"
        "  b0 = A * ((A + 1.0) + (A - 1.0) * c + beta); b1 = A * -2.0 * ((A - 1.0) + (A + 1.0) * c);\n"
        "  b2 = A * ((A + 1.0) + (A - 1.0) * c - beta); a0 = (A + 1.0) - (A - 1.0) * c + beta;\n"
        "  a1 = 2.0 * ((A - 1.0) - (A + 1.0) * c); a2 = (A + 1.0) - (A - 1.0) * c - beta;\n"
        "};\n"
        "peakeq(f, g, q) = fi.tf22t(b0 / a0, c2 / a0, b2 / a0, c2 / a0, a2 / a0)\n"
        "with {\n"
        "  A = eqa(g); alpha = sin(eqw(f)) / (2.0 * q); c2 = -2.0 * cos(eqw(f));\n"
        "  b0 = 1.0 + alpha * A; b2 = 1.0 - alpha * A; a0 = 1.0 + alpha / A; a2 = 1.0 - alpha / A;\n"
        "};\n"
        "highpass1(f) = fi.tf1(1.0 / (n + 1.0), -1.0 / (n + 1.0), (n - 1.0) / (n + 1.0))\n"
        "with { n = tan(ma.PI * min(f, " + faust_number(MAX_FREQUENCY_FRACTION) + " * ma.SR) / ma.SR); };"
    ),
    "ballistics": (
        "// JUCE ballistics coefficient for a time constant in ms.\n"
        "ballistics(ms) = exp(-2.0 * ma.PI * 1000.0 / (ma.SR * ms));"
    ),
    "verbsr": (
        "// Freeverb with delay lengths for the host's rate (JUCE: int(SR) * tuning / 44100, floor; the\n"
        "// 1e-6 keeps an exact quotient whole however Faust orders the float operations).\n"
        "vlen(t) = max(1, int(floor(float(int(ma.SR)) * t / 44100.0 + 1e-6)));\n"
        "vcombsr(N, t, fb, d) = (+ ~ (de.delay(N, vlen(t) - 1) : lp : *(fb))) : de.delay(N, vlen(t))\n"
        "with { lp = *(1.0 - d) : + ~ *(d); };\n"
        "vallpsr(N, t) = _ <: ((+ ~ (de.delay(N, vlen(t) - 1) : *(0.5))) : de.delay(N, vlen(t))), _ : -;"
    ),
    "delaysr": (
        "// Feedback delay of D = max(1, round(ms * SR / 1000)) whole samples (N: the longest line).\n"
        "fbdelaysr(N, ms, fb, mix) = _ <: *(1.0 - mix), ((+ ~ (de.delay(N, D - 1) : *(fb))) : de.delay(N, D) : *(mix)) :> _\n"
        "with { D = max(1, int(rint(ms * ma.SR / 1000.0))); };"
    ),
}


@dataclass(frozen=True)
class Control:
    """One adjustable parameter: its port ``symbol`` (a C identifier, also the Faust label), its
    `ParamSpec` (name, unit, range, curve) and the mix's ``value`` (the control's default)."""

    symbol: str
    spec: ParamSpec
    value: float


@dataclass(frozen=True)
class ControlledProgram:
    """A Faust program with live controls: source text, channel counts, the controls in port
    order and the look-ahead (ms) of each limiter (which sets the latency)."""

    code: str
    in_channels: int
    out_channels: int
    controls: tuple[Control, ...]
    lookaheads_ms: tuple[float, ...] = ()

    def latency_samples(self, sample_rate: float) -> int:
        """The delay (samples) the program adds at ``sample_rate`` Hz: the limiters' look-ahead."""
        return sum(limiter_lookahead_samples(ms, sample_rate) - 1 for ms in self.lookaheads_ms)


def port_symbol(name: str, taken: set[str]) -> str:
    """A C identifier for parameter ``name`` (``comp.threshold_db`` -> ``comp_threshold_db``),
    distinct from the symbols in ``taken`` (which it joins)."""
    base = re.sub(r"\W", "_", name, flags=re.ASCII).strip("_") or "param"
    if not (base[0].isalpha() or base[0] == "_"):
        base = "p_" + base
    symbol, n = base, 1
    while symbol in taken:
        n += 1
        symbol = f"{base}_{n}"
    taken.add(symbol)
    return symbol


def _control_expr(control: Control) -> str:
    s = control.spec
    step = s.step if s.curve == "discrete" else (s.max - s.min) / 10000.0
    d = faust_number(float(np.float32(control.value)))
    slider = f'hslider("{control.symbol}", {d}, {faust_number(s.min)}, {faust_number(s.max)}, {faust_number(step)})'
    if s.curve == "discrete" or control.spec.name.endswith("delay_ms"):
        return slider
    return f"{slider} : smooth({d})"


def _block(effect: Effect, p: Mapping[str, str], n: int) -> tuple[str, int, tuple[str, ...]]:
    """Faust code of ``effect`` for ``n`` inputs with parameter expressions ``p``: (code, out, helpers)."""
    t = effect.type

    def per_channel(expr: str) -> str:
        return expr if n == 1 else f"par(i, {n}, {expr})"

    if t == "gain":
        return per_channel(f"*(ba.db2linear({p['gain_db']}))"), n, ()
    if t in ("low_shelf", "high_shelf", "peak"):
        fn = {"low_shelf": "lowshelf", "high_shelf": "highshelf", "peak": "peakeq"}[t]
        return per_channel(f"{fn}({p['cutoff_hz']}, {p['gain_db']}, {p['q']})"), n, ("eq",)
    if t == "highpass":
        return per_channel(f"highpass1({p['cutoff_hz']})"), n, ("eq",)
    if t == "compressor":
        args = (
            f"ballistics({p['attack_ms']})",
            f"ballistics({p['release_ms']})",
            f"ba.db2linear({p['threshold_db']})",
            f"1.0 / ({p['ratio']}) - 1.0",
            f"ba.db2linear({p['makeup_db']})",
        )
        return per_channel(f"comp({', '.join(args)})"), n, ("comp", "ballistics")
    if t == "limiter":
        raise BackendError("faust: a limiter is built by `_limiter`")  # pragma: no cover
    if t == "reverb":
        fb = f"(0.7 + 0.28 * ({p['room_size']}))"
        damp = f"(0.4 * ({p['damping']}))"
        wet = f"(3.0 * ({p['wet_level']}))"
        w1 = f"(0.5 * {wet} * (1.0 + ({p['width']})))"
        w2 = f"(0.5 * {wet} * (1.0 - ({p['width']})))"
        dry = f"(2.0 * ({p['dry_level']}))"

        def bank(side: int) -> str:
            spread = STEREO_SPREAD * side
            size = lambda t: math.ceil(MAX_SAMPLE_RATE * (t + spread) / 44100) + 2  # noqa: E731
            combs = ", ".join(f"vcombsr({size(c)}, {c + spread}, {fb}, {damp})" for c in COMB_TUNINGS)
            allp = " : ".join(f"vallpsr({size(a)}, {a + spread})" for a in ALLPASS_TUNINGS)
            return f"(_ <: {combs} :> {allp})"

        g = faust_number(REVERB_INPUT_GAIN)
        if n == 1:
            return f"(_ <: (*({g}) : {bank(0)} : *({w1})), *({dry}) :> _)", 1, ("verb", "verbsr")
        code = (
            f"(si.bus(2) <: ((+ : *({g}) <: {bank(0)}, {bank(1)}), si.bus(2))"
            f" : \\(wl, wr, l, r).(wl * {w1} + wr * {w2} + l * {dry}, wr * {w1} + wl * {w2} + r * {dry}))"
        )
        return code, 2, ("verb", "verbsr")
    if t == "width":
        if n == 1:
            return "_", 1, ()
        w = p["width"]
        code = f"(\\(l, r).((l + r) * 0.5 + (l - r) * 0.5 * ({w}), (l + r) * 0.5 - (l - r) * 0.5 * ({w})))"
        return code, 2, ()
    if t == "pan":
        th = f"(({p['pan']}) + 1.0) * ma.PI / 4.0"
        gl, gr = f"(sqrt(2.0) * cos({th}))", f"(sqrt(2.0) * sin({th}))"
        if n == 1:
            return f"(_ <: *({gl}), *({gr}))", 2, ()
        return f"(*({gl}), *({gr}))", 2, ()
    raise BackendError(f"faust: effect {effect.id!r} has unsupported type {t!r}")


def _delay(effect: Effect, p: Mapping[str, str], max_ms: float, n: int) -> tuple[str, int, tuple[str, ...]]:
    size = math.ceil(max_ms * MAX_SAMPLE_RATE / 1000.0) + 2
    expr = f"fbdelaysr({size}, {p['delay_ms']}, {p['feedback']}, {p['mix']})"
    return (expr if n == 1 else f"par(i, {n}, {expr})"), n, ("delay", "delaysr")


def _limiter(effect: Effect, p: Mapping[str, str], n: int) -> tuple[str, int, tuple[str, ...]]:
    big_l = limiter_lookahead_samples(effect["lookahead_ms"], MAX_SAMPLE_RATE)
    length = f"max(1, int(rint({faust_number(effect['lookahead_ms'])} * ma.SR / 1000.0)))"
    c = f"ba.db2linear({p['ceiling_db']})"
    k = f"(1.0 - exp(-1.0 / (({p['release_ms']}) * ma.SR / 1000.0)))"
    gain = f"limgainsr({c}, {big_l}, {length}, {k})"
    delay = f"de.delay({big_l}, {length} - 1)"
    clip = f"max(0.0 - {c}) : min({c})"
    if n == 1:
        code = f"(_ <: {delay}, (abs : {gain}) : *) : {clip}"
    else:
        code = (
            f"(si.bus(2) <: ({delay}, {delay}), (par(i, 2, abs) : max : {gain}) : \\(l, r, g).(l * g, r * g))"
            f" : par(i, 2, {clip})"
        )
    return code, n, ("limsr",)


_CONTROL_HELPERS["limsr"] = (
    "// Look-ahead limiter gain (as faust_codegen's limgain) with a window of L <= N samples.\n"
    "limgainsr(c, N, L, k) = need : ba.slidingMax(L, N) : ba.slidingSump(L, N) : /(L) : rel : (1.0 - _)\n"
    "with {\n"
    "  need(p) = 1.0 - c / max(p, c);\n"
    "  rel = (\\(hp, u).(select2(u >= hp, hp + k * (u - hp), u))) ~ _;\n"
    "};"
)


def _comment(text: str) -> str:
    return re.sub(r"[^\w .:+=-]", "?", text)[:80]


def controlled_program(
    effects: Sequence[Effect],
    controlled: Sequence[Mapping[str, ParamSpec]],
    channels: int = 2,
    name: str = "plugin-bridge mix",
) -> ControlledProgram:
    """One Faust program for ``effects`` with a control for each parameter in ``controlled``.

    ``controlled[i]`` maps parameter names of ``effects[i]`` to their `ParamSpec` (the chain's
    predicted parameters, `plugin_bridge.chain.Slot.predicted`); their values in ``effects`` are
    the controls' defaults, every other parameter is a constant. ``channels`` (1 or 2) is the
    number of inputs; ``name`` goes into the program's ``declare name``. An effect without
    controls that leaves audio unchanged is left out (identity).
    """
    if channels not in (1, 2):
        raise BackendError(f"faust: {channels} input channels; only mono and stereo are supported")
    if len(controlled) != len(effects):
        raise BackendError("faust: one mapping of controlled parameters per effect is needed")
    taken: set[str] = set()
    controls: list[Control] = []
    lines_fx: list[str] = []
    helpers: set[str] = set()
    lookaheads: list[float] = []
    n = channels
    for i, (effect, specs) in enumerate(zip(effects, controlled, strict=True)):
        params: dict[str, str] = {}
        for pname, value in effect.params.items():
            spec = specs.get(pname)
            if spec is None:
                params[pname] = faust_number(value)
                continue
            control = Control(port_symbol(spec.name, taken), spec, float(value))
            controls.append(control)
            params[pname] = f"ctl{len(controls) - 1}"
        if not specs and effect.is_neutral() and effect.type != "pan":
            code, out = ("_" if n == 1 else f"si.bus({n})"), n
            used: tuple[str, ...] = ()
        elif effect.type == "delay":
            spec = specs.get("delay_ms")
            code, out, used = _delay(effect, params, spec.max if spec else effect["delay_ms"], n)
        elif effect.type == "limiter":
            if "lookahead_ms" in specs:
                raise BackendError(
                    f"faust: {effect.id}.lookahead_ms sets the plugin's latency and cannot be a live control"
                )
            lookaheads.append(float(effect["lookahead_ms"]))
            code, out, used = _limiter(effect, params, n)
        else:
            code, out, used = _block(effect, params, n)
        helpers.update(used)
        lines_fx.append(f"// {_comment(effect.id)}: {effect.type}")
        lines_fx.append(f"fx{i} = {code};")
        n = out
    lines = ["declare name " + '"' + _comment(name) + '";', 'import("stdfaust.lib");', ""]
    if controls:
        helpers.add("smooth")
    for key, text in {**HELPERS, **_CONTROL_HELPERS}.items():
        if key in helpers:
            lines.append(text + "\n")
    for k, control in enumerate(controls):
        lines.append(f"// {_comment(control.spec.name)} ({control.spec.unit or 'no unit'})")
        lines.append(f"ctl{k} = {_control_expr(control)};")
    lines.append("")
    lines += lines_fx
    body = " : ".join(f"fx{i}" for i in range(len(effects))) or ("_" if channels == 1 else "si.bus(2)")
    lines += ["", f"process = {body};", ""]
    return ControlledProgram("\n".join(lines), channels, n, tuple(controls), tuple(lookaheads))
