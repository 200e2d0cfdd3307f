"""Compare the sentence-splitter backends of :mod:`qa.sentences`.

Run from the repository root::

    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.splitters

Measures, per backend, exactly what callers of ``split_sentences`` get, i.e.
including the steps shared by all backends (single newlines treated as spaces,
list items, CJK terminators, closers/footnotes kept with their sentence, no cut
after titles such as "Dr." or "v."):

* gold: exact-match accuracy (whole split equals the hand-labelled split) and
  boundary precision/recall/F1 over the hand-written cases below plus the seed
  article; boundaries are sentence starts that are not paragraph starts.
* SQuAD v1.1 dev: sentence count, share of gold answers that cross a sentence
  boundary (lower is better, but under-splitting also lowers it, hence the
  share of sentences over 400 characters), share of sentences under 4 chars.
* SQuAD disputes: accuracy on a hand-labelled sample of SQuAD boundaries
  where the libraries disagree (see SQUAD_DISPUTES).
* speed: sentences per second over the SQuAD paragraphs (wall clock, best
  of up to 3 passes; the machine is shared, so expect noise).

Prints a table and writes ``bench/results/splitters.json``.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qa.sentences import (  # noqa: E402
    BACKENDS,
    DEFAULT_BACKEND,
    split_paragraphs,
    split_sentences,
)

ROOT = Path(__file__).resolve().parent.parent
SQUAD = Path("/work/shared/eval/squad-dev-v1.1.json.gz")
SEED = Path("/work/shared/seeds/openai-api-block-chinese-ai-startups.txt")
OUT = ROOT / "bench" / "results" / "splitters.json"

# (text, gold sentences in order). Gold strings must tile the text exactly,
# up to whitespace; this is checked before scoring.
GOLD: list[tuple[str, list[str]]] = [
    # Abbreviations
    ("The U.S. economy grew. Analysts were surprised.",
     ["The U.S. economy grew.", "Analysts were surprised."]),
    ("He lives in the U.S. He works in Ohio.",
     ["He lives in the U.S.", "He works in Ohio."]),
    ("Mr. Brown met Mrs. Green and Ms. White at noon. They talked.",
     ["Mr. Brown met Mrs. Green and Ms. White at noon.", "They talked."]),
    ("Dr. Smith arrived late. The patient waited.",
     ["Dr. Smith arrived late.", "The patient waited."]),
    ("Many fruits, e.g. apples and pears, are rich in fibre. Eat them daily.",
     ["Many fruits, e.g. apples and pears, are rich in fibre.", "Eat them daily."]),
    ("Use a strong password, i.e. one with symbols. Change it often.",
     ["Use a strong password, i.e. one with symbols.", "Change it often."]),
    ("Apple Inc. reported record profits. Shares rose.",
     ["Apple Inc. reported record profits.", "Shares rose."]),
    ("He works at Acme Inc. in Boston. He likes it.",
     ["He works at Acme Inc. in Boston.", "He likes it."]),
    ("Room No. 5 was empty. Nobody knew why.",
     ["Room No. 5 was empty.", "Nobody knew why."]),
    ("The No. 1 seed lost. Fans were shocked.",
     ["The No. 1 seed lost.", "Fans were shocked."]),
    ("Prof. Chen and Sen. Lee spoke at St. Mary's church. It rained.",
     ["Prof. Chen and Sen. Lee spoke at St. Mary's church.", "It rained."]),
    ("The company, founded in Jan. 2020, grew fast. It now has 300 staff.",
     ["The company, founded in Jan. 2020, grew fast.", "It now has 300 staff."]),
    ("See p. 42 and fig. 7 for details. The rest is below.",
     ["See p. 42 and fig. 7 for details.", "The rest is below."]),
    ("She earned a Ph.D. from MIT. Then she joined Google.",
     ["She earned a Ph.D. from MIT.", "Then she joined Google."]),
    ("The meeting starts at 9 a.m. sharp. Be on time.",
     ["The meeting starts at 9 a.m. sharp.", "Be on time."]),
    ("We met at 5 p.m. The talk went well.",
     ["We met at 5 p.m.", "The talk went well."]),
    ("Bring pens, paper, etc. to class. Do not be late.",
     ["Bring pens, paper, etc. to class.", "Do not be late."]),
    ("On Nov. 7, 2024, OpenAI acted. Startups reacted.",
     ["On Nov. 7, 2024, OpenAI acted.", "Startups reacted."]),
    ("The population was ca. 2 million. It grew.",
     ["The population was ca. 2 million.", "It grew."]),
    ("Trinity-St. Paul's Church is old. It was rebuilt.",
     ["Trinity-St. Paul's Church is old.", "It was rebuilt."]),
    ("Washington, D.C. is the capital. The vote was 5 vs. 3 in favour.",
     ["Washington, D.C. is the capital.", "The vote was 5 vs. 3 in favour."]),
    ("Paris is the capital.[1] It is old.[2][3]", ["Paris is the capital.[1]", "It is old.[2][3]"]),
    ("The Environmental Protection Agency (EPA) said so. It was clear.",
     ["The Environmental Protection Agency (EPA) said so.", "It was clear."]),
    ("He went home. Mr. Smith stayed.", ["He went home.", "Mr. Smith stayed."]),
    ("It rained. St. Louis was flooded.", ["It rained.", "St. Louis was flooded."]),
    # Initials
    ("He won. J. K. Rowling lost.", ["He won.", "J. K. Rowling lost."]),
    ("J. K. Rowling wrote Harry Potter. It sold well.",
     ["J. K. Rowling wrote Harry Potter.", "It sold well."]),
    ("The novel by George R. R. Martin is long. Fans wait.",
     ["The novel by George R. R. Martin is long.", "Fans wait."]),
    # Numbers
    ("The rate rose to 3.5 percent. Prices followed.",
     ["The rate rose to 3.5 percent.", "Prices followed."]),
    ("China accounted for 61.1 percent of patents. The US held 20.9 percent.",
     ["China accounted for 61.1 percent of patents.", "The US held 20.9 percent."]),
    ("The city has 1,234,567 residents. It is growing.",
     ["The city has 1,234,567 residents.", "It is growing."]),
    ("The rod is 3.5 m long. It weighs 2.4 kg.",
     ["The rod is 3.5 m long.", "It weighs 2.4 kg."]),
    ("Version 2.0.1 was released. It fixes bugs.",
     ["Version 2.0.1 was released.", "It fixes bugs."]),
    ("He scored 99.9%. That is a record.",
     ["He scored 99.9%.", "That is a record."]),
    ("The total was 39,500. The rest were sold.",
     ["The total was 39,500.", "The rest were sold."]),
    # Quotes
    ("He said “stop.” Then he left.", ["He said “stop.”", "Then he left."]),
    ("Many firms, which are “unsupported” by OpenAI, were affected. Others were not.",
     ["Many firms, which are “unsupported” by OpenAI, were affected.", "Others were not."]),
    ('"I am done," she said. "Let us go."', ['"I am done," she said.', '"Let us go."']),
    ('"Are you coming?" he asked. She nodded.', ['"Are you coming?" he asked.', "She nodded."]),
    ("“Why?” she asked. He shrugged.", ["“Why?” she asked.", "He shrugged."]),
    ("She shouted “Help!” and ran. Nobody came.",
     ["She shouted “Help!” and ran.", "Nobody came."]),
    # Multi-sentence quotations are split inside (Penn Treebank / UD convention).
    ('Milanovic wrote: "Growth matters. Education is the key." Others disagree.',
     ['Milanovic wrote: "Growth matters.', 'Education is the key."', "Others disagree."]),
    ("She said: “We won. We are happy.” Fans cheered.",
     ["She said: “We won.", "We are happy.”", "Fans cheered."]),
    ("He called it ‘a disaster.’ The board agreed.",
     ["He called it ‘a disaster.’", "The board agreed."]),
    # Ellipses, parentheses, other punctuation
    ("He thought… maybe tomorrow. Then he slept.",
     ["He thought… maybe tomorrow.", "Then he slept."]),
    ("I wonder... Maybe not.", ["I wonder...", "Maybe not."]),
    ("The results were clear (see Fig. 3). We stopped.",
     ["The results were clear (see Fig. 3).", "We stopped."]),
    ("(This is a parenthetical sentence.) The next one follows.",
     ["(This is a parenthetical sentence.)", "The next one follows."]),
    ("Is this right? Yes! It is.", ["Is this right?", "Yes!", "It is."]),
    ("I came; I saw; I conquered.", ["I came; I saw; I conquered."]),
    ("The iPhone was launched. iPads came later.",
     ["The iPhone was launched.", "iPads came later."]),
    ("Visit www.example.com for details. Email info@example.org today.",
     ["Visit www.example.com for details.", "Email info@example.org today."]),
    # Lists, headlines, layout
    ("Shopping list:\n- eggs\n- milk\n- bread", ["Shopping list:", "- eggs", "- milk", "- bread"]),
    ("Steps:\n1. Open the box.\n2. Remove the device.\n3. Plug it in.",
     ["Steps:", "1. Open the box.", "2. Remove the device.", "3. Plug it in."]),
    ("Stocks Rise Sharply", ["Stocks Rise Sharply"]),
    ("Markets Rally After Fed Decision\n\nStocks rose on Monday. Bonds fell.",
     ["Markets Rally After Fed Decision", "Stocks rose on Monday.", "Bonds fell."]),
    ("This sentence is wrapped\nacross two lines. This one is not.",
     ["This sentence is wrapped\nacross two lines.", "This one is not."]),
    ("First para. Second sentence.\n\n\nLast para without end",
     ["First para.", "Second sentence.", "Last para without end"]),
    ("  Leading spaces. Trailing spaces.  ", ["Leading spaces.", "Trailing spaces."]),
    # CJK
    ("今天天气很好。我们去公园吧！你呢？", ["今天天气很好。", "我们去公园吧！", "你呢？"]),
    ("他说：“我们走吧！”然后离开了。", ["他说：“我们走吧！”", "然后离开了。"]),
    ("私は学生です。毎日大学に行きます。", ["私は学生です。", "毎日大学に行きます。"]),
    ("今天很热！！明天呢？？", ["今天很热！！", "明天呢？？"]),
    ("The word 你好 means hello. 这是中文。", ["The word 你好 means hello.", "这是中文。"]),
    ("OpenAI于周二封锁API。这影响了初创公司。", ["OpenAI于周二封锁API。", "这影响了初创公司。"]),
]

# Seed article, one gold sentence per entry; title, date and headings are
# their own paragraphs in the file.
SEED_GOLD: list[str] = [
    "OpenAI’s API Block Spurs Innovation in Chinese AI Startups",
    "11/07/2024",
    "OpenAI’s Decision and Its Implications",
    "Beginning Tuesday, US-based OpenAI will block application programming interface (API) "
    "traffic from countries and regions that are not on its supported list.",
    "This decision poses a challenge to certain domestic artificial intelligence companies but "
    "might also push these companies to focus more on innovation.",
    "Impact on Chinese AI Startups",
    "Quite a few AI startups in the Chinese mainland, which are “unsupported” by OpenAI, have "
    "been developing large language models (LLMs) or AI applications by integrating with the "
    "OpenAI API.",
    "Those might suffer from OpenAI’s blocking of data traffic.",
    "By doing so, OpenAI has effectively exited the mainland market, relinquishing the "
    "opportunity of training LLMs in the large market, thus providing domestic LLM companies an "
    "opportunity to accelerate their independent R&D and encouraging more startups to opt for "
    "domestically produced LLMs.",
    "Comparative LLM Development in China and the US",
    "China doesn’t lag far behind the US in terms of LLM development.",
    "Its developed LLMs account for 36 percent of the global total compared to the US’ 44 "
    "percent, according to the Global Digital Economy White Paper 2024 released by the Global "
    "Digital Economy Conference on July 2.",
    "Despite the US leading in fundamental model research and development, China holds a strong "
    "position in the number of AI patents and the installation of industrial robots.",
    "In 2022, China accounted for 61.1 percent of the global AI patents, surpassing the 20.9 "
    "percent held by the US.",
    "The installation of industrial robots in China reached 290,300 units in 2022, which is 7.4 "
    "times the 39,500 units in the US at that time.",
    "Narrowing the Gap Between the US and China",
    "From all aspects, the gap between the US and China is not that huge.",
    "As startups in China will now have to turn to integrating with domestic LLM developers, "
    "there will be vast amounts of linguistic materials for the latter to train their models "
    "with.",
    "This leverages China’s advantage of a large, active population with access to the "
    "internet, speeding up the development of its AI sector.",
    "OpenAI’s decision to block API traffic from unsupported regions presents both challenges "
    "and opportunities for Chinese AI startups.",
    "While these companies face the immediate hurdle of losing access to OpenAI’s tools, they "
    "are also being pushed towards greater innovation and reliance on domestic resources.",
    "China’s strong foundation in AI patents and industrial robot installations, combined with "
    "its substantial internet-using population, positions it well to make significant strides "
    "in AI development.",
]

# Hand-labelled SQuAD dev boundaries: a seeded random sample (random.seed(2024),
# 100 of the 477) of the sentence starts on which pysbd/syntok/blingfire/
# sentencex disagreed; one item with corrupted source text ("1629. revolted")
# was dropped. (paragraph index in file order, char offset, label): 1 = a
# sentence starts here, 0 = it does not, 2 = a sentence starts here inside a
# multi-sentence quotation (split by Penn Treebank / UD convention, but a
# defensible non-boundary too, so also reported with these left out).
SQUAD_DISPUTES: list[tuple[int, int, int]] = [
    (84, 575, 1), (186, 174, 1), (198, 455, 1), (217, 322, 2), (229, 98, 1), (269, 364, 1),
    (272, 373, 1), (280, 140, 1), (299, 830, 2), (328, 238, 1), (399, 721, 2), (431, 1301, 2),
    (437, 651, 2), (453, 323, 1), (475, 314, 0), (479, 116, 0), (479, 240, 0), (519, 265, 0),
    (543, 371, 0), (543, 499, 1), (545, 512, 1), (571, 596, 1), (634, 545, 0), (656, 118, 1),
    (726, 518, 0), (731, 303, 1), (739, 235, 1), (747, 1333, 1), (756, 2420, 0), (775, 1545, 1),
    (775, 1964, 1), (848, 419, 1), (859, 583, 1), (877, 430, 1), (885, 504, 1), (893, 227, 2),
    (906, 375, 0), (958, 438, 0), (964, 554, 1), (969, 384, 0), (979, 299, 1), (979, 661, 0),
    (997, 1652, 0), (1003, 1227, 1), (1087, 297, 0), (1092, 483, 0), (1092, 667, 1),
    (1096, 350, 1), (1151, 438, 1), (1192, 298, 1), (1198, 211, 1), (1205, 1160, 1),
    (1278, 282, 2), (1286, 521, 1), (1292, 638, 2), (1300, 645, 2), (1334, 477, 0),
    (1347, 422, 0), (1353, 292, 1), (1376, 317, 0), (1376, 527, 0), (1376, 561, 0),
    (1376, 877, 0), (1376, 1115, 0), (1388, 470, 0), (1431, 890, 2), (1449, 1752, 2),
    (1449, 1882, 0), (1463, 574, 1), (1469, 768, 2), (1480, 254, 1), (1486, 89, 1),
    (1493, 465, 0), (1498, 228, 0), (1510, 186, 0), (1547, 575, 0), (1585, 1371, 0),
    (1594, 592, 0), (1618, 537, 1), (1623, 478, 1), (1631, 426, 1), (1658, 180, 2),
    (1658, 198, 2), (1661, 22, 0), (1747, 36, 1), (1754, 524, 0), (1754, 527, 1), (1760, 413, 1),
    (1793, 295, 0), (1820, 321, 1), (1828, 420, 0), (1880, 688, 1), (1899, 861, 1),
    (1914, 237, 1), (1920, 1169, 2), (1951, 331, 2), (2038, 566, 0), (2038, 602, 0),
    (2043, 910, 1),
]


def gold_spans(text: str, sentences: list[str]) -> list[tuple[int, int]]:
    """Locate gold sentences in ``text``; fail loudly if they do not tile it."""
    spans, cursor = [], 0
    for sent in sentences:
        start = text.index(sent, cursor)
        if text[cursor:start].strip():
            raise ValueError(f"gold skips {text[cursor:start]!r}")
        spans.append((start, start + len(sent)))
        cursor = start + len(sent)
    if text[cursor:].strip():
        raise ValueError(f"gold misses tail {text[cursor:]!r}")
    return spans


def inner_starts(text: str, spans: list[tuple[int, int]]) -> set[int]:
    """Sentence starts that are not paragraph starts (the decisions that matter)."""
    para_starts = {s for s, _ in split_paragraphs(text)}
    return {s for s, _ in spans if s not in para_starts}


def score_gold(backend: str, cases: list[tuple[str, list[str]]]) -> dict:
    exact, tp, fp, fn, failures = 0, 0, 0, 0, []
    for text, sentences in cases:
        gold = gold_spans(text, sentences)
        pred = split_sentences(text, backend)
        if pred == gold:
            exact += 1
        else:  # keep only the differing sentences, so the seed article stays readable
            got = [text[s:e] for s, e in pred if (s, e) not in gold]
            want = [text[s:e] for s, e in gold if (s, e) not in pred]
            failures.append({"got": got, "want": want})
        g, p = inner_starts(text, gold), inner_starts(text, pred)
        tp, fp, fn = tp + len(g & p), fp + len(p - g), fn + len(g - p)
    prec = tp / (tp + fp) if tp + fp else 1.0
    rec = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"cases": len(cases), "exact": exact, "exact_match": exact / len(cases),
            "precision": prec, "recall": rec, "boundary_f1": f1, "failures": failures}


def load_squad() -> list[tuple[str, list[tuple[int, int]]]]:
    """(context, unique trimmed answer spans) for every SQuAD dev paragraph."""
    with gzip.open(SQUAD, "rt", encoding="utf-8") as f:
        data = json.load(f)["data"]
    out = []
    for article in data:
        for para in article["paragraphs"]:
            ctx, answers = para["context"], set()
            for qa in para["qas"]:
                for ans in qa["answers"]:
                    start, text = ans["answer_start"], ans["text"]
                    lead = len(text) - len(text.lstrip())
                    if text.strip():
                        answers.add((start + lead, start + lead + len(text.strip())))
            out.append((ctx, sorted(answers)))
    return out


def score_squad(backend: str, paragraphs: list[tuple[str, list[tuple[int, int]]]]) -> dict:
    """Answer-crossing, fragment and length statistics plus speed on SQuAD."""
    # CPUs are shared, so keep the best of up to 3 timed passes (one if slow).
    times: list[float] = []
    while len(times) < 3 and sum(times) < 10:
        t0 = time.perf_counter()
        splits = [split_sentences(ctx, backend) for ctx, _ in paragraphs]
        times.append(time.perf_counter() - t0)
    n_sent = sum(len(s) for s in splits)
    lengths = [e - s for spans in splits for s, e in spans]
    n_ans = crossing = 0
    for (_, answers), spans in zip(paragraphs, splits):
        for a, b in answers:
            n_ans += 1
            crossing += not any(s <= a and b <= e for s, e in spans)
    right = [(off in {s for s, _ in splits[para]}) == bool(label)
             for para, off, label in SQUAD_DISPUTES]
    plain = [ok for ok, (_, _, label) in zip(right, SQUAD_DISPUTES) if label != 2]
    disputes_ok = sum(right)
    return {"paragraphs": len(paragraphs), "sentences": n_sent, "answers": n_ans,
            "answers_crossing": crossing, "crossing_rate": crossing / n_ans,
            "short_sentences": sum(n < 4 for n in lengths),
            "fragment_rate": sum(n < 4 for n in lengths) / n_sent,
            "mean_chars": sum(lengths) / n_sent,
            "long_rate": sum(n > 400 for n in lengths) / n_sent,
            "disputes": len(SQUAD_DISPUTES), "disputes_correct": disputes_ok,
            "disputes_accuracy": disputes_ok / len(SQUAD_DISPUTES),
            "disputes_no_quotes_accuracy": sum(plain) / len(plain),
            "seconds": min(times), "sentences_per_s": n_sent / min(times)}


def main() -> None:
    seed = SEED.read_text(encoding="utf-8")
    cases = GOLD + [(seed, SEED_GOLD)]
    squad = load_squad()
    results = {}
    for backend in BACKENDS:
        split_sentences("Warm up. The library loads here.", backend)  # exclude import time
        results[backend] = {"gold": score_gold(backend, cases),
                            "squad": score_squad(backend, squad)}
        results[backend]["gold"]["seed_exact"] = (
            split_sentences(seed, backend) == gold_spans(seed, SEED_GOLD))
        print(f"done {backend}", flush=True)

    header = (f"{'backend':<10} {'gold exact':>14} {'bndF1':>6} {'seed':>4} | {'sents':>6} "
              f"{'crossing':>12} {'frag%':>6} {'>400ch%':>7} {'disputes':>12} {'noQ':>4} "
              f"{'sent/s':>8}")
    print("\n" + header + "\n" + "-" * len(header))
    for backend, r in results.items():
        g, q = r["gold"], r["squad"]
        print(f"{backend:<10} {g['exact']:>3}/{g['cases']:<3} ({g['exact_match']:.3f}) "
              f"{g['boundary_f1']:6.3f} {'ok' if g['seed_exact'] else 'FAIL':>4} | "
              f"{q['sentences']:>6} {q['answers_crossing']:>3} ({100 * q['crossing_rate']:.3f}%) "
              f"{100 * q['fragment_rate']:6.3f} {100 * q['long_rate']:7.3f} "
              f"{q['disputes_correct']:>3}/{q['disputes']} ({q['disputes_accuracy']:.2f}) "
              f"{q['disputes_no_quotes_accuracy']:4.2f} "
              f"{q['sentences_per_s']:8.0f}")
    q0 = next(iter(results.values()))["squad"]
    print(f"\nSQuAD v1.1 dev: {q0['paragraphs']} paragraphs, {q0['answers']} unique answer spans; "
          "crossing = answers not inside one sentence; disputes = hand-labelled boundaries "
          "the libraries disagree on (noQ: leaving out those inside quotations)")
    for backend, r in results.items():
        for fail in r["gold"]["failures"]:
            print(f"  {backend:<10} got  {fail['got']}\n  {'':<10} want {fail['want']}")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    report = {"default_backend": DEFAULT_BACKEND, "backends": results}
    OUT.write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"\ndefault backend in qa/sentences.py: {DEFAULT_BACKEND}")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
