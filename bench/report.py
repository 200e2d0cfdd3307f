"""The benchmark's Markdown table: each figure beside its floor, ratio and target."""

from __future__ import annotations

from typing import Any

Row = tuple[str, str, str, str, str, bool | None]


def _ok(value: float | None, limit: float, below: bool) -> bool | None:
    if value is None:
        return None
    return value <= limit if below else value >= limit


def _rows(all_stages: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    stages = {name: figures for name, figures in all_stages.items() if "error" not in figures}
    if b := stages.get("build"):
        rows.append((f"Build, SQuAD dev ({b['articles']} articles, {b['sentences']:,} sentences, "
                     f"{b['texts_encoded']:,} texts encoded)",
                     f"{b['build_sentences_per_s']:.0f} sentences/s ({b['build_s']:.1f} s)",
                     f"inside the model's encode: {b['encode_texts_per_s']:.0f} texts/s ({b['encode_s']:.1f} s)",
                     f"{b['ratio']:.2f}", ">= 0.90", _ok(b["ratio"], 0.90, below=False)))
    if c := stages.get("recipes"):
        rows += _recipe_rows(c)
    if r := stages.get("rebuild"):
        speedup = r.get("speedup")
        rows.append(("Rebuild of the unchanged corpus (cache)", f"{r['rebuild_s']:.2f} s",
                     f"cold build {stages.get('build', {}).get('build_s', '?')} s",
                     f"{speedup:.1f}x faster" if speedup else "-", ">= 20x", _ok(speedup, 20, below=False)))
    if a := stages.get("add"):
        rows.append((f"Add one article ({a['article_sentences']} sentences) to {a['index_sentences']:,}",
                     f"{a['add_s']:.2f} s", f"inside the model's encode: {a['encode_s']:.2f} s",
                     f"+{a['overhead_s']:.2f} s", "< 1 s + encode", _ok(a["overhead_s"], 1.0, below=True)))
    if q := stages.get("answer"):
        rows.append((f"answer() at 10k sentences, p50 / p95 ({q['answer']['count']} questions)",
                     f"{q['answer']['p50_ms']:.1f} / {q['answer']['p95_ms']:.1f} ms",
                     f"encode the question: {q['encode']['p50_ms']:.1f} ms", f"{q['p50_ratio']:.3f}", "<= 1.5",
                     _ok(q["p50_ratio"], 1.5, below=True)))
        rows.append(("Serving process at 10k: peak RSS / load time", f"{q['memory']['peak_rss_mib']:.0f} MiB",
                     f"loaded in {q['load_s']:.1f} s", "-", "-", None))
    if g := stages.get("segments"):
        rows.append((f"answer() at 10k in {g['segments']} segments, p50 / p95",
                     f"{g['answer']['p50_ms']:.1f} / {g['answer']['p95_ms']:.1f} ms",
                     f"encode the question: {g['encode']['p50_ms']:.1f} ms", f"{g['p50_ratio']:.3f}", "<= 1.5",
                     _ok(g["p50_ratio"], 1.5, below=True)))
        rows += _change_rows("10k", g["change"], at_scale=False)
    for name in sorted((k for k in stages if k.startswith("scale_")), key=lambda k: int(k.split("_")[1])):
        s = stages[name]
        label = f"{s['sentences'] // 1000}k" if s["sentences"] < 1_000_000 else f"{s['sentences'] / 1e6:g}M"
        kinds = ", ".join(f"{s['dense_kinds'].count(k)} {k}" for k in sorted(set(s["dense_kinds"])))
        rows.append((f"{label}: segments, build time, size on disk", f"{len(s['segments'])} segments ({kinds})",
                     f"build {s['build_s']:.0f} s, {s['disk_mib']:,.0f} MiB on disk", "-", "-", None))
        rows.append((f"{label}: ANN recall@10 vs exact ({len(s['segments'])} segments)", f"{s['recall_at_10']:.3f}",
                     "candidates merged across segments", "-", ">= 0.95", _ok(s["recall_at_10"], 0.95, below=False)))
        rows.append((f"{label}: answer() p50 / p95 ({len(s['segments'])} segments)",
                     f"{s['answer']['p50_ms']:.1f} / {s['answer']['p95_ms']:.1f} ms",
                     f"encode the question: {s['encode']['p50_ms']:.1f} ms", f"{s['p50_ratio']:.3f}", "<= 3",
                     _ok(s["p50_ratio"], 3.0, below=True)))
        rows.append((f"{label}: serving process peak RSS", f"{s['memory']['peak_rss_mib']:,.0f} MiB",
                     f"loaded in {s['load_s']:.1f} s", "-", "<= 1536 MiB",
                     _ok(s["memory"]["peak_rss_mib"], 1536, below=True)))
        rows += _change_rows(label, s["change"], at_scale=s["sentences"] >= 1_000_000)
        if m := s.get("merge"):
            same = m["after"]
            rows.append((f"{label}: merge of {m['segments_merged']} segments into one", f"{m['merge_s']:.1f} s",
                         f"answers identical after: {same['identical']}/{same['questions']} (max score change "
                         f"{same['max_citation_score_difference']:.1e}); recall@10 after {m['recall_at_10_after']:.3f}",
                         "-", "identical", same["identical"] == same["questions"]))
    if c := stages.get("coldstart"):
        rows.append(("Cold start: `python app.py` to first answer", f"{c['first_answer_s']:.1f} s",
                     f"listening after {c['listening_s']:.1f} s"
                     + ("; ONNX model exported by the build before" if c.get("onnx_model_already_exported") else ""),
                     "-", "<= 10 s", _ok(c["first_answer_s"], 10, True)))
    return rows


def _recipe_rows(c: dict[str, Any]) -> list[Row]:
    """Rows for each recipe's cold build against one plain encode (`bench.build_cost.measure_recipes`)."""
    timings, floor_name = c["timings"], "floor: sentence-transformers encode of the sentences (batch 64)"
    floor = timings[floor_name]
    rows: list[Row] = [(f"Plain encode of the {c['sentences']:,} sentences (sentence-transformers, batch 64)",
                        f"{c['sentences'] / floor['wall_s']:.0f} sentences/s ({floor['wall_s']:.1f} s)",
                        f"{c['per_sentence']['plain']['tokens_per_sentence']:.1f} tokens per sentence", "1.00", "-", None)]
    for name, figures in timings.items():
        if not name.endswith("cold build (empty cache)"):
            continue
        recipe = name.split(":")[0]
        load = c["per_sentence"][recipe]
        default = recipe == c["default_recipe"]
        rows.append((f"Cold build, recipe `{recipe}`" + (" (default)" if default else ""),
                     f"{c['sentences'] / figures['wall_s']:.0f} sentences/s ({figures['wall_s']:.1f} s)",
                     f"{load['texts_per_sentence']:.2f} texts, {load['tokens_per_sentence']:.1f} tokens per sentence",
                     f"{figures['ratio_to_floor']:.2f}", "<= 2.0" if default else "-",
                     _ok(figures["ratio_to_floor"], 2.0, below=True) if default else None))
    for name, figures in timings.items():
        if name.endswith("unchanged rebuild (every vector cached)"):
            rows.append((f"Unchanged rebuild, recipe `{name.split(':')[0]}`", f"{figures['wall_s']:.1f} s",
                         "every vector from the cache", f"{figures['ratio_to_floor']:.2f}", "-", None))
    return rows


def _change_rows(label: str, c: dict[str, Any], at_scale: bool) -> list[Row]:
    """Rows for one add and one remove (`bench.segments.change_costs`)."""
    rows: list[Row] = [
        (f"{label}: add one article ({c['article_sentences']} sentences): bytes written",
         f"{c['add_bytes'] / 1e6:.2f} MB", "one new segment and a commit point", "-", "<= 5 MB",
         _ok(c["add_bytes"] / 1e6, 5.0, below=True)),
        (f"{label}: the same add: time over the article's own encode", f"{c['add_over_encode_s']:+.2f} s",
         f"add {c['add_s']:.2f} s, encode {c['encode_s']:.2f} s", "-", "<= 1 s" if at_scale else "-",
         _ok(c["add_over_encode_s"], 1.0, below=True) if at_scale else None),
        (f"{label}: remove one article: time / bytes written", f"{c['remove_s']:.3f} s / {c['remove_bytes']:,} B",
         "a deletion file and a commit point", "-", "<= 1 s / <= 1 MB" if at_scale else "-",
         (c["remove_s"] <= 1.0 and c["remove_bytes"] <= 1e6) if at_scale else None),
    ]
    return rows


def _encoder_rows(e: dict[str, Any]) -> list[str]:
    lines = ["| encoder | texts/s | speed-up | SQuAD-dev MRR | MRR change | adopt (>= 1.5x, drop <= 0.01) |",
             "|---|---|---|---|---|---|"]
    for name, v in e["variants"].items():
        if "error" in v:
            lines.append(f"| {name} | - | - | - | - | not measured: {v['error']} |")
            continue
        lines.append(f"| {name} | {v['texts_per_s']:.0f} | {v['speedup']:.2f}x | {v['mrr']:.4f} | "
                     f"{v['mrr_change']:+.4f} | {'yes' if v.get('adopt') else 'no'} |")
    return lines


def table(report: dict[str, Any]) -> str:
    """The whole report as Markdown: machine line, figures table, encoder table."""
    m = report["machine"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB RAM, {m['os']}, Python {m['python']}; "
             f"load average at start {m['load_average_at_start']}. Total run {report.get('total_s', '?')} s."]
    rows = _rows(report["stages"])
    if rows:
        lines += ["", "| figure | measured | floor / context | ratio | target | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "-"}[row[5]]
        lines.append("| " + " | ".join([*row[:5], met]) + " |")
    if (e := report["stages"].get("encoders")) and "error" not in e:
        lines += ["", *_encoder_rows(e)]
    if (c := report["stages"].get("cluster")) and "error" not in c:
        from bench.cluster import markdown

        lines += ["", *markdown(c)]
    for name, figures in report["stages"].items():
        if "error" in figures:
            lines += ["", f"Stage `{name}` failed: {figures['error'].splitlines()[0][:300]}"]
    return "\n".join(lines)
