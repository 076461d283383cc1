"""The mix as an LV2 plugin: a recipe's built-in chain compiled from Faust into an ``.lv2`` bundle.

`lv2_program` turns a chain recipe into a Faust program whose predicted parameters are control
ports (`plugin_bridge.backends.faust_controls`: names, units, ranges and curves of the parameter
space, defaults at the recipe's values); `write_bundle` compiles it with Debian's ``faust`` (C++
with ``-double``) and ``g++`` against the LV2 headers (``lv2-dev``) into::

    <stem>.lv2/
        manifest.ttl     the plugin's URI, binary and description file
        <stem>.ttl       ports: audio in/out, the latency (output), one control per parameter
        <stem>.so        the compiled plugin

The LV2 glue is a small architecture file of our own (`WRAPPER`: the descriptor, port binding by
symbol, latency report); Faust's own ``lv2.cpp`` would also need Boost and a URID map for MIDI
this plugin does not use. The description (.ttl) is written here from the data, not by the binary.

A chain whose slots are rendered by third-party plugins (``recipe.plugins``) becomes one bundle
per run of built-in stages (``<stem>-1.lv2``, ...); `notes` says what to insert between them.
Nothing half-built is left behind: the bundle is assembled in a temporary folder beside the
target and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..backends.faust_controls import MAX_SAMPLE_RATE, Control, ControlledProgram, controlled_program
from ..errors import FormatError
from ..files import new_file_mode, record_written
from .names import safe_name
from .recipe import Recipe

#: What to install when a build tool is missing: (what is checked, Debian package).
TOOLS = (("faust", "faust"), ("g++", "g++"), ("/usr/include/lv2/core/lv2.h", "lv2-dev"))

#: The LV2 units this writer knows, by our unit names.
LV2_UNITS = {"dB": "units:db", "Hz": "units:hz", "ms": "units:ms", "s": "units:s"}

#: Seconds a compile may take before it is abandoned.
COMPILE_TIMEOUT_S = 300

WRAPPER = r"""/* plugin-bridge: LV2 glue for one Faust program (generated; plugin_bridge/export/lv2.py). */
#include <algorithm>
#include <cmath>
#include <cstring>
#include <lv2/core/lv2.h>

#ifndef FAUSTFLOAT
#define FAUSTFLOAT float
#endif

#include "faust/gui/UI.h"
#include "faust/gui/meta.h"
#include "faust/dsp/dsp.h"

<<includeIntrinsic>>
<<includeclass>>

@@TABLES@@

/* Port layout: audio inputs, audio outputs, latency (control output), then the controls. */
static const int PB_FIRST_CONTROL = PB_N_IN + PB_N_OUT + 1;

struct PBZones : public UI {
    FAUSTFLOAT* zones[PB_N_CONTROLS + 1] = {nullptr};
    void bind(const char* label, FAUSTFLOAT* zone) {
        for (int i = 0; i < PB_N_CONTROLS; ++i)
            if (std::strcmp(label, PB_SYMBOLS[i]) == 0) zones[i] = zone;
    }
    void openTabBox(const char*) override {}
    void openHorizontalBox(const char*) override {}
    void openVerticalBox(const char*) override {}
    void closeBox() override {}
    void addButton(const char* l, FAUSTFLOAT* z) override { bind(l, z); }
    void addCheckButton(const char* l, FAUSTFLOAT* z) override { bind(l, z); }
    void addVerticalSlider(const char* l, FAUSTFLOAT* z, FAUSTFLOAT, FAUSTFLOAT, FAUSTFLOAT, FAUSTFLOAT) override { bind(l, z); }
    void addHorizontalSlider(const char* l, FAUSTFLOAT* z, FAUSTFLOAT, FAUSTFLOAT, FAUSTFLOAT, FAUSTFLOAT) override { bind(l, z); }
    void addNumEntry(const char* l, FAUSTFLOAT* z, FAUSTFLOAT, FAUSTFLOAT, FAUSTFLOAT, FAUSTFLOAT) override { bind(l, z); }
    void addHorizontalBargraph(const char*, FAUSTFLOAT*, FAUSTFLOAT, FAUSTFLOAT) override {}
    void addVerticalBargraph(const char*, FAUSTFLOAT*, FAUSTFLOAT, FAUSTFLOAT) override {}
    void addSoundfile(const char*, const char*, Soundfile**) override {}
};

struct PBPlugin {
    mydsp dsp;
    PBZones ui;
    int latency = 0;
    float* latency_port = nullptr;
    const float* controls[PB_N_CONTROLS + 1] = {nullptr};
    float* in[PB_N_IN + 1] = {nullptr};
    float* out[PB_N_OUT + 1] = {nullptr};
};

static LV2_Handle pb_instantiate(const LV2_Descriptor*, double rate, const char*, const LV2_Feature* const*) {
    if (!(rate >= 1.0 && rate <= PB_MAX_RATE)) return nullptr;
    PBPlugin* p = new PBPlugin();
    p->dsp.init((int)rate);
    p->dsp.buildUserInterface(&p->ui);
    for (int i = 0; i < PB_N_CONTROLS; ++i)
        if (!p->ui.zones[i]) { delete p; return nullptr; }
    p->latency = pb_latency(rate);
    return (LV2_Handle)p;
}

static void pb_connect_port(LV2_Handle h, uint32_t port, void* data) {
    PBPlugin* p = (PBPlugin*)h;
    int i = (int)port;
    if (i < PB_N_IN) p->in[i] = (float*)data;
    else if (i < PB_N_IN + PB_N_OUT) p->out[i - PB_N_IN] = (float*)data;
    else if (i == PB_N_IN + PB_N_OUT) p->latency_port = (float*)data;
    else if (i - PB_FIRST_CONTROL < PB_N_CONTROLS) p->controls[i - PB_FIRST_CONTROL] = (const float*)data;
}

static void pb_activate(LV2_Handle h) { ((PBPlugin*)h)->dsp.instanceClear(); }

static void pb_run(LV2_Handle h, uint32_t n) {
    PBPlugin* p = (PBPlugin*)h;
    for (int i = 0; i < PB_N_CONTROLS; ++i)
        if (p->controls[i]) {
            float v = *p->controls[i];
            if (!(v == v)) continue; /* NaN: keep the last value */
            *p->ui.zones[i] = std::min(std::max(v, PB_MIN[i]), PB_MAX[i]);
        }
    if (p->latency_port) *p->latency_port = (float)p->latency;
    if (n) p->dsp.compute((int)n, p->in, p->out);
}

static void pb_cleanup(LV2_Handle h) { delete (PBPlugin*)h; }
static const void* pb_extension_data(const char*) { return nullptr; }

static const LV2_Descriptor pb_descriptor = {
    PB_URI, pb_instantiate, pb_connect_port, pb_activate, pb_run, nullptr, pb_cleanup, pb_extension_data
};

extern "C" LV2_SYMBOL_EXPORT const LV2_Descriptor* lv2_descriptor(uint32_t index) {
    return index == 0 ? &pb_descriptor : nullptr;
}
"""


@dataclass(frozen=True)
class Lv2Plugin:
    """One plugin to build: its URI, display name, file stem and Faust program."""

    uri: str
    name: str
    stem: str
    program: ControlledProgram
    comment: str = ""


@dataclass(frozen=True)
class Lv2Export:
    """What `export_lv2` wrote: the bundles (folders) and the notes (None when nothing to say)."""

    bundles: tuple[Path, ...]
    notes: str | None


def missing_tools() -> str | None:
    """One line naming the Debian packages to install when a build tool is missing, else None."""
    missing = [pkg for tool, pkg in TOOLS if not (Path(tool).exists() if "/" in tool else shutil.which(tool))]
    if not missing:
        return None
    return (
        f"LV2 export needs {', '.join(missing)}: install with "
        f"apt-get install --no-install-recommends {' '.join(missing)}"
    )


def mix_id(recipe: Recipe) -> str:
    """A short stable hash of what the recipe renders (effects and values): part of the URI."""
    payload = json.dumps([[e.to_dict() for e in recipe.effects], dict(recipe.values)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _segments(recipe: Recipe) -> list[list[int] | str]:
    """The chain's slots as runs of built-in effect indices, with hosted-plugin slot ids between."""
    hosted = {p.slot for p in recipe.plugins}
    out: list[list[int] | str] = []
    for i, e in enumerate(recipe.effects):
        if e.id in hosted:
            out.append(e.id)
        elif out and isinstance(out[-1], list):
            out[-1].append(i)
        else:
            out.append([i])
    return out


def lv2_plugins(recipe: Recipe, stem: str) -> tuple[list[Lv2Plugin], str | None]:
    """The plugins a chain recipe becomes (one per run of built-in stages) and the notes on the
    hosted plugins to insert between them (None when the chain has none). Pure: no files."""
    if not isinstance(recipe, Recipe) or recipe.kind != "chain":
        raise FormatError("LV2 export needs a chain recipe; a session has one chain per track and bus")
    chain = recipe.chain_object()
    if chain is None:
        raise FormatError("LV2 export: the recipe holds no chain")
    specs = {s.id: s.predicted for s in chain.slots}
    segments = _segments(recipe)
    runs = [s for s in segments if isinstance(s, list)]
    if not runs:
        raise FormatError(
            "LV2 export: every slot of this chain renders on a third-party plugin; there is no built-in stage to build"
        )
    ident = mix_id(recipe)
    label = Path(recipe.input).stem if recipe.input else stem
    who = f"model {recipe.model_id}" if recipe.model_id else "plugin-bridge"
    plugins: list[Lv2Plugin] = []
    for k, run in enumerate(runs, start=1):
        suffix = f"-{k}" if len(runs) > 1 else ""
        effects = [recipe.effects[i] for i in run]
        name = f"plugin-bridge mix {label}{suffix}"
        program = controlled_program(effects, [specs.get(e.id, {}) for e in effects], channels=2, name=name)
        plugins.append(
            Lv2Plugin(
                uri=f"urn:plugin-bridge:mix:{ident}{suffix}",
                name=name,
                stem=f"{stem}{suffix}",
                program=program,
                comment=(
                    f"The {recipe.space_version} chain ({', '.join(e.id for e in effects)}) of the mix of "
                    f"{label} by {who}; controls default to the mix's values."
                ),
            )
        )
    hosted = [s for s in segments if isinstance(s, str)]
    if not hosted:
        return plugins, None
    lines = [f"The LV2 bundles cover the built-in stages of {label}'s chain; insert the hosted plugins:", ""]
    by_slot = {p.slot: p for p in recipe.plugins}
    k = 0
    for step, seg in enumerate(segments, start=1):
        if isinstance(seg, list):
            lines.append(f"{step}. {plugins[k].stem}.lv2 ({plugins[k].uri})")
            k += 1
        else:
            p = by_slot[seg]
            preset = "a .vstpreset (--format vstpreset)" if p.format == "vst3" else "an .fxp (--format fxp)"
            lines.append(
                f"{step}. {p.name} ({p.format.upper()}, {p.path}) for slot {seg!r}: its state is in the "
                f"recipe and exports as {preset} or in the REAPER chain (--format reaper)"
            )
    return plugins, "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Turtle
# --------------------------------------------------------------------------------------------


def _ttl_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a valid Turtle string literal for plain text


def _number(x: float) -> str:
    text = repr(float(x))
    return text if ("." in text or "e" in text) else text + ".0"


def manifest_ttl(plugin: Lv2Plugin) -> str:
    """The bundle's manifest.ttl: the plugin's URI, its binary and its description file."""
    return (
        "@prefix lv2:  <http://lv2plug.in/ns/lv2core#> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n\n"
        f"<{plugin.uri}>\n"
        "    a lv2:Plugin ;\n"
        f"    lv2:binary <{plugin.stem}.so> ;\n"
        f"    rdfs:seeAlso <{plugin.stem}.ttl> .\n"
    )


def _control_port(index: int, c: Control) -> str:
    s = c.spec
    value = min(max(c.value, s.min), s.max)
    lines = [
        "a lv2:InputPort, lv2:ControlPort",
        f"lv2:index {index}",
        f"lv2:symbol {_ttl_string(c.symbol)}",
        f"lv2:name {_ttl_string(s.name)}",
        f"lv2:default {_number(value)}",
        f"lv2:minimum {_number(s.min)}",
        f"lv2:maximum {_number(s.max)}",
    ]
    if s.unit in LV2_UNITS:
        lines.append(f"units:unit {LV2_UNITS[s.unit]}")
    if s.curve in ("log", "db"):
        lines.append("lv2:portProperty epp:logarithmic")
    if s.curve == "discrete":
        steps = round((s.max - s.min) / s.step) + 1
        lines.append(f"epp:rangeSteps {steps}")
        if s.step == 1.0 and float(s.min).is_integer():
            lines.append("lv2:portProperty lv2:integer")
    if s.description:
        lines.append(f"rdfs:comment {_ttl_string(s.description)}")
    return "[\n        " + " ;\n        ".join(lines) + "\n    ]"


def plugin_ttl(plugin: Lv2Plugin, max_latency: int) -> str:
    """The plugin description: audio ports, the latency port (samples, at most ``max_latency``)
    and one control port per parameter, in the port order of `WRAPPER`."""
    prog = plugin.program
    ports = []
    idx = 0
    for direction, count, prefix in (("Input", prog.in_channels, "in"), ("Output", prog.out_channels, "out")):
        names = ["left", "right"] if count == 2 else ["mono"]
        for ch in range(count):
            ports.append(
                f"[\n        a lv2:{direction}Port, lv2:AudioPort ;\n        lv2:index {idx} ;\n"
                f'        lv2:symbol "{prefix}_{names[ch]}" ;\n'
                f'        lv2:name "{direction} {names[ch]}"\n    ]'
            )
            idx += 1
    ports.append(
        f"[\n        a lv2:OutputPort, lv2:ControlPort ;\n        lv2:index {idx} ;\n"
        '        lv2:symbol "latency" ;\n        lv2:name "Latency" ;\n'
        "        lv2:designation lv2:latency ;\n        lv2:portProperty lv2:reportsLatency, lv2:integer ;\n"
        f"        lv2:minimum 0 ;\n        lv2:maximum {max(1, max_latency)} ;\n"
        "        units:unit units:frame\n    ]"
    )
    idx += 1
    for c in prog.controls:
        ports.append(_control_port(idx, c))
        idx += 1
    head = (
        "@prefix doap:  <http://usefulinc.com/ns/doap#> .\n"
        "@prefix epp:   <http://lv2plug.in/ns/ext/port-props#> .\n"
        "@prefix foaf:  <http://xmlns.com/foaf/0.1/> .\n"
        "@prefix lv2:   <http://lv2plug.in/ns/lv2core#> .\n"
        "@prefix rdfs:  <http://www.w3.org/2000/01/rdf-schema#> .\n"
        "@prefix units: <http://lv2plug.in/ns/extensions/units#> .\n\n"
    )
    body = (
        f"<{plugin.uri}>\n"
        "    a lv2:Plugin, lv2:MixerPlugin, doap:Project ;\n"
        f"    doap:name {_ttl_string(plugin.name)} ;\n"
        "    doap:license <https://opensource.org/licenses/MIT> ;\n"
        '    doap:maintainer [ foaf:name "plugin-bridge" ] ;\n'
        "    lv2:optionalFeature lv2:hardRTCapable ;\n"
        "    lv2:minorVersion 0 ;\n    lv2:microVersion 1 ;\n"
        f"    rdfs:comment {_ttl_string(plugin.comment)} ;\n"
        "    lv2:port " + " , ".join(ports) + " .\n"
    )
    return head + body


def wrapper_source(plugin: Lv2Plugin, max_rate: int) -> str:
    """`WRAPPER` with this plugin's tables: URI, channel counts, control symbols and bounds, and the
    latency (samples) as a function of the sample rate."""
    prog = plugin.program
    syms = ", ".join(f'"{c.symbol}"' for c in prog.controls) or "nullptr"
    lo = ", ".join(f"{float(c.spec.min)!r}f" for c in prog.controls) or "0.0f"
    hi = ", ".join(f"{float(c.spec.max)!r}f" for c in prog.controls) or "0.0f"
    terms = " + ".join(
        f"(std::max(1, (int)std::rint({ms!r} * rate / 1000.0)) - 1)" for ms in prog.lookaheads_ms
    )
    tables = (
        f"#define PB_URI {_ttl_string(plugin.uri)}\n"
        f"static const double PB_MAX_RATE = {float(max_rate)!r};\n"
        f"static const int PB_N_IN = {prog.in_channels};\n"
        f"static const int PB_N_OUT = {prog.out_channels};\n"
        f"static const int PB_N_CONTROLS = {len(prog.controls)};\n"
        f"static const char* const PB_SYMBOLS[] = {{{syms}}};\n"
        f"static const float PB_MIN[] = {{{lo}}};\n"
        f"static const float PB_MAX[] = {{{hi}}};\n"
        f"static int pb_latency(double rate) {{ (void)rate; return {terms or '0'}; }}\n"
    )
    return WRAPPER.replace("@@TABLES@@", tables)


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------


def _run(cmd: Sequence[str], cwd: Path, what: str) -> None:
    try:
        res = subprocess.run(
            list(cmd), cwd=cwd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise FormatError(f"LV2 export: {what} took longer than {COMPILE_TIMEOUT_S} s") from None
    except OSError as e:
        raise FormatError(f"LV2 export: cannot run {cmd[0]} ({e.strerror or e})") from None
    if res.returncode != 0:
        lines = (res.stderr or res.stdout).strip().splitlines()
        errors = [ln for ln in lines if "error" in ln.lower()] or lines or [f"exit status {res.returncode}"]
        raise FormatError(f"LV2 export: {what} failed: {errors[0]}")


def compile_plugin(plugin: Lv2Plugin, folder: Path, max_rate: int = MAX_SAMPLE_RATE) -> Path:
    """Compile ``plugin`` into ``folder/<stem>.so`` (faust -double -ftz 2, then g++ -O2); returns the path.

    ``max_rate`` (Hz) is the highest sample rate the plugin accepts (its delay lines are sized for
    `MAX_SAMPLE_RATE`)."""
    build = Path(tempfile.mkdtemp(prefix="pb-lv2-build."))
    try:
        (build / "mix.dsp").write_text(plugin.program.code, encoding="utf-8")
        (build / "arch.cpp").write_text(
            wrapper_source(plugin, min(max_rate, MAX_SAMPLE_RATE)), encoding="utf-8"
        )
        _run(
            # -ftz 2: recursive signals (reverb tails) flush to zero below the smallest normal
            # double instead of running on as slow denormals in a long silence
            [
                "faust",
                "-double",
                "-ftz",
                "2",
                "-i",
                "-a",
                "arch.cpp",
                "-cn",
                "mydsp",
                "mix.dsp",
                "-o",
                "plugin.cpp",
            ],
            build,
            "faust",
        )
        target = folder.resolve() / f"{plugin.stem}.so"
        _run(
            [
                "g++",
                "-shared",
                "-fPIC",
                "-O2",
                "-std=c++11",
                "-fvisibility=hidden",
                "plugin.cpp",
                "-o",
                str(target),
            ],
            build,
            "g++",
        )
        return target
    finally:
        shutil.rmtree(build, ignore_errors=True)


def write_bundle(plugin: Lv2Plugin, out_dir: str | os.PathLike) -> Path:
    """Build ``out_dir/<stem>.lv2`` (manifest, description, binary) in a temporary folder beside it
    and rename it into place (replacing an older bundle of the same name); returns the bundle."""
    out = Path(out_dir)
    if not out.is_dir():
        raise FormatError(f"{out}: output folder does not exist")
    target = out / f"{plugin.stem}.lv2"
    tmp = Path(tempfile.mkdtemp(prefix=f".{plugin.stem}.", suffix=".lv2.part", dir=out))
    old: Path | None = None
    try:
        os.chmod(tmp, new_file_mode() | 0o111)
        (tmp / "manifest.ttl").write_text(manifest_ttl(plugin), encoding="utf-8")
        max_latency = plugin.program.latency_samples(MAX_SAMPLE_RATE)
        (tmp / f"{plugin.stem}.ttl").write_text(plugin_ttl(plugin, max_latency), encoding="utf-8")
        compile_plugin(plugin, tmp)
        for f in tmp.iterdir():
            os.chmod(f, new_file_mode() | (0o111 if f.suffix == ".so" else 0))
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{plugin.stem}.", suffix=".lv2.old", dir=out))
            os.replace(target, old / "bundle")
        os.replace(tmp, target)
    except OSError as e:
        raise FormatError(f"{target}: cannot write the LV2 bundle ({e.strerror or e})") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    record_written(target)
    return target


def export_lv2(recipe: Recipe, out_dir: str | os.PathLike, stem: str = "mix") -> Lv2Export:
    """Write ``recipe``'s chain as LV2 bundle(s) ``<stem>.lv2`` in ``out_dir`` (see the module
    docstring); `FormatError` with the Debian packages to install when faust, g++ or the LV2
    headers are missing, or when the recipe is a session."""
    plugins, notes = lv2_plugins(recipe, safe_name(stem))
    reason = missing_tools()
    if reason:
        raise FormatError(reason)
    return Lv2Export(tuple(write_bundle(p, out_dir) for p in plugins), notes)
