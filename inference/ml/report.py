"""Markdown summary of the shipped models, generated from their cards.

python -m inference.ml.report inference/zoo > table.md
"""

from __future__ import annotations

import sys
from pathlib import Path

from .cards import CARD_FILENAME, read_card


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown_table(zoo: str | Path) -> str:
    rows = [
        "| Model | Classes | Input | Published accuracy (test) | Val accuracy | Val balanced acc. | Val macro AUC "
        "| ECE before / after | NLL before / after | T | Params | Train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for card_path in sorted(Path(zoo).glob(f"*/{CARD_FILENAME}")):
        card = read_card(card_path)
        val = card["metrics"]["validation"]
        bench = card["published_benchmark"]
        published = _pct(bench.get("accuracy"))
        if bench.get("accuracy_range"):
            low, high = bench["accuracy_range"]
            published = f"{100 * low:.0f}-{100 * high:.0f}%"
        h, w = card["input_size"]
        ece = f"{_num(val['ece_before'])} / {_num(val['ece_after'])}"
        nll = f"{_num(val.get('nll_before'))} / {_num(val.get('nll_after'))}"
        cross_fitted = card["metrics"].get("cross_fitted")
        if cross_fitted:
            # The temperature saw validation too: these figures come from images it did not see.
            before, after = cross_fitted["ece_uncalibrated"], cross_fitted["ece"]
            ece = f"{_num(before)} / {_num(after)} (cross-fitted, n={cross_fitted['n']})"
            before, after = cross_fitted["log_loss_uncalibrated"], cross_fitted["log_loss"]
            nll = f"{_num(before)} / {_num(after)} (cross-fitted)"
        rows.append(
            f"| `{card['name']}` | {len(card['labels'])} | {h}x{w} {card['color_mode']} | {published} "
            f"| {_pct(val['accuracy'])} | {_pct(val['balanced_accuracy'])} | {_num(val['macro_auc'])} "
            f"| {ece} | {nll} | {card['temperature']:.2f} "
            f"| {card['parameters']:,} | {card['training_time_s'] / 60:.1f} min |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    zoo = Path(args[0]) if args else Path(__file__).resolve().parents[1] / "zoo"
    sys.stdout.write(markdown_table(zoo))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
