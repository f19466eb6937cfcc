"""What a purpose lets an app infer, measured, in plain words for notices and the portal.

``neurogate bench leakage`` writes each purpose's measured figures to
``leakage_figures.json`` beside ``purposes.toml``: the highest ROC AUC of its attackers
(telling, from what the app receives, when the subject reacted to something and to which
kind of event) and the lowest utility correlation. The catalog appends the sentence of
`measured_sentence` to every notice of a measured purpose, so the notice states the figure
of the latest report and its SHA-256 covers it; the portal shows the same sentence.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from neurogate.errors import ValidationError

FIGURES_FILE = "leakage_figures.json"
_FIELDS = ("needs_event_timing", "worst_auc", "worst_auc_ci_high", "leakage_auc_max",
           "utility_r", "utility_r_min")

# {auc}: the figure, formatted for the language. Keys: (language, variant, case), where
# case is "timing" (the purpose needs event timing), "chance" (within its budget) or "above".
_SENTENCES: dict[tuple[str, str, str], str] = {
    ("en", "plain", "chance"):
        "We measured what this app receives on a test recording: an app with this consent "
        "could tell when you reacted to something, or to what, no better than a coin toss "
        "(a score of {auc}, where 0.50 is a coin toss and 1.00 is always right).",
    ("en", "plain", "above"):
        "We measured what this app receives on a test recording: an app with this consent "
        "could tell when you reacted to something a little better than a coin toss "
        "(a score of {auc}, where 0.50 is a coin toss and 1.00 is always right).",
    ("en", "plain", "timing"):
        "This use needs the timing of your brain's responses, so an app with this consent "
        "could tell when you reacted to something (on a test recording it scored {auc}, "
        "where 0.50 is a coin toss and 1.00 is always right).",
    ("en", "child", "chance"):
        "We tested it. From these numbers, nobody can tell when you reacted to something. "
        "It is like guessing with a coin.",
    ("en", "child", "above"):
        "We tested it. From these numbers, the app can sometimes guess when you reacted "
        "to something.",
    ("en", "child", "timing"):
        "We tested it. The app can tell when you reacted to something on a screen.",
    ("zh-Hans", "plain", "chance"):
        "我们在一段测试记录上测量了该应用收到的数据：获得此同意的应用判断你何时对某事作出反应、"
        "或对什么作出反应，并不比抛硬币更准（得分 {auc}，0.50 相当于抛硬币，1.00 表示总是猜对）。",
    ("zh-Hans", "plain", "above"):
        "我们在一段测试记录上测量了该应用收到的数据：获得此同意的应用判断你何时对某事作出反应，"
        "比抛硬币略准一些（得分 {auc}，0.50 相当于抛硬币，1.00 表示总是猜对）。",
    ("zh-Hans", "plain", "timing"):
        "这一用途需要你大脑反应的时间，因此获得此同意的应用能够判断你何时对某事作出了反应"
        "（在测试记录上得分 {auc}，0.50 相当于抛硬币，1.00 表示总是猜对）。",
    ("zh-Hans", "child", "chance"):
        "我们测试过了。从这些数字里，谁也看不出你什么时候对某件事有了反应。就像抛硬币猜一样。",
    ("zh-Hans", "child", "above"):
        "我们测试过了。从这些数字里，应用有时能猜到你什么时候对某件事有了反应。",
    ("zh-Hans", "child", "timing"):
        "我们测试过了。应用能看出你什么时候对屏幕上的东西有了反应。",
    ("es", "plain", "chance"):
        "Medimos lo que recibe esta aplicación en una grabación de prueba: una aplicación con "
        "este consentimiento no podría saber cuándo reaccionaste a algo, ni a qué, mejor que "
        "lanzando una moneda (una puntuación de {auc}, donde 0,50 es lanzar una moneda y "
        "1,00 es acertar siempre).",
    ("es", "plain", "above"):
        "Medimos lo que recibe esta aplicación en una grabación de prueba: una aplicación con "
        "este consentimiento podría saber cuándo reaccionaste a algo un poco mejor que "
        "lanzando una moneda (una puntuación de {auc}, donde 0,50 es lanzar una moneda y "
        "1,00 es acertar siempre).",
    ("es", "plain", "timing"):
        "Este uso necesita el momento de las respuestas de tu cerebro, así que una aplicación "
        "con este consentimiento podría saber cuándo reaccionaste a algo (en una grabación "
        "de prueba obtuvo {auc}, donde 0,50 es lanzar una moneda y 1,00 es acertar siempre).",
    ("es", "child", "chance"):
        "Lo hemos probado. Con estos números, nadie puede saber cuándo reaccionaste a algo. "
        "Es como adivinar lanzando una moneda.",
    ("es", "child", "above"):
        "Lo hemos probado. Con estos números, la aplicación a veces puede adivinar cuándo "
        "reaccionaste a algo.",
    ("es", "child", "timing"):
        "Lo hemos probado. La aplicación puede saber cuándo reaccionaste a algo en una "
        "pantalla.",
}


def _case(figures: Mapping[str, Any]) -> str:
    if figures["needs_event_timing"]:
        return "timing"
    return "chance" if figures["worst_auc"] <= figures["leakage_auc_max"] else "above"


def measured_sentence(figures: Mapping[str, Any], language: str, variant: str = "plain") -> str:
    """The plain-words sentence stating one purpose's measured figure.

    Parameters
    ----------
    figures : mapping
        One purpose's entry of ``leakage_figures.json``.
    language : {"en", "zh-Hans", "es"}
        The notice language.
    variant : {"plain", "child"}
        Adults' or children's wording.
    """
    key = (language, variant, _case(figures))
    if key not in _SENTENCES:
        msg = (f"No measured-figure sentence for language {language!r} and variant "
               f"{variant!r}; allowed are 'en', 'zh-Hans' and 'es', 'plain' and 'child'.")
        raise ValidationError(msg, field="language")
    auc = f"{figures['worst_auc']:.2f}"
    return _SENTENCES[key].format(auc=auc.replace(".", ",") if language == "es" else auc)


def _check(data: Any, source: str) -> dict[str, dict[str, Any]]:
    purposes = data.get("purposes") if isinstance(data, dict) else None
    if not isinstance(purposes, dict):
        msg = f"Invalid {source}: it must hold a 'purposes' table, but got {data!r:.80}."
        raise ValidationError(msg, field="purposes")
    for purpose_id, entry in purposes.items():
        missing = [f for f in _FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            msg = (f"Invalid {source}: purpose {purpose_id!r} lacks {missing!r}; run "
                   "`neurogate bench leakage` to measure it again.")
            raise ValidationError(msg, field=purpose_id)
    return purposes


@functools.cache
def load_figures() -> Mapping[str, Mapping[str, Any]]:
    """The shipped measured figures by purpose id (empty if never measured)."""
    path = resources.files("neurogate.consent").joinpath(FIGURES_FILE)
    if not path.is_file():
        return {}
    return _check(json.loads(path.read_text(encoding="utf-8")), FIGURES_FILE)


def shipped_figures_path() -> Path:
    """Where ``neurogate bench leakage`` writes the figures: beside ``purposes.toml``."""
    return Path(__file__).resolve().with_name(FIGURES_FILE)


def write_figures(path: Path, budgets: Mapping[str, Mapping[str, Any]], *, recording: str,
                  duration_s: float) -> None:
    """Write the per-purpose figures of a leakage run (``budgets`` of the bench) to ``path``."""
    keep = (*_FIELDS, "stimulus_auc", "event_type_auc", "worst_auc_product",
            "worst_auc_attack", "keeps_leakage_budget", "keeps_utility_floor",
            "feedback_latency_s")
    data = {"measured_on": {"recording": recording, "duration_s": duration_s,
                            "date": datetime.now(UTC).date().isoformat()},
            "purposes": {pid: {k: entry.get(k) for k in keep} for pid, entry in budgets.items()
                         if entry.get("worst_auc") is not None}}
    _check(data, path.name)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    load_figures.cache_clear()


__all__ = ["FIGURES_FILE", "load_figures", "measured_sentence", "shipped_figures_path",
           "write_figures"]
