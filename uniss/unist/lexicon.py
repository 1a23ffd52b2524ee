"""Seeded bilingual (English <-> Mandarin) sentence generator for the demo source corpus.

Why: no English<->Chinese parallel speech corpus or MT model can be had offline here
(``../shared/FACTS.md``), so the demo corpus is made of short template sentences over an *aligned*
lexicon: every English slot filler has exactly one Chinese rendering, so each generated pair carries
its reference translation (used by ``ReferenceMT``, paper App. E.2 is the LLM alternative).

Design (kept small on purpose so a tiny LM can learn the mapping):
- 4 templates, ~60 lexicon entries; 8 x 10 x 12 x 6 = 5,760 subject/verb/object/time combinations
  for the main template alone, i.e. thousands of distinct parallel pairs.
- Sentences are 3-8 English words / 5-17 hanzi, i.e. about 1-4.5 s of TTS speech.
- Split by *sentence*: the split of a pair is a pure function of a hash of its English text, so a
  test sentence can never appear in training, whatever the size or seed.

All functions are pure; randomness comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

#: Aligned lexicon: (English, Mandarin) per slot. English verbs are 3rd person singular because
#: every subject is singular.
SUBJECTS: tuple[tuple[str, str], ...] = (
    ("my mother", "我妈妈"),
    ("my father", "我爸爸"),
    ("the teacher", "老师"),
    ("my friend", "我朋友"),
    ("the doctor", "医生"),
    ("the little girl", "小女孩"),
    ("our neighbor", "我们的邻居"),
    ("the student", "学生"),
)
VERBS: tuple[tuple[str, str], ...] = (
    ("likes", "喜欢"),
    ("buys", "买"),
    ("wants", "想要"),
    ("needs", "需要"),
    ("eats", "吃"),
    ("sees", "看见"),
    ("finds", "找到"),
    ("brings", "带来"),
    ("sells", "卖"),
    ("cooks", "做"),
)
OBJECTS: tuple[tuple[str, str], ...] = (
    ("green tea", "绿茶"),
    ("fresh fish", "新鲜的鱼"),
    ("a red apple", "一个红苹果"),
    ("white rice", "白米饭"),
    ("a new book", "一本新书"),
    ("hot soup", "热汤"),
    ("cold water", "冷水"),
    ("sweet bread", "甜面包"),
    ("a big cake", "一个大蛋糕"),
    ("some flowers", "一些花"),
    ("a small cat", "一只小猫"),
    ("black coffee", "黑咖啡"),
)
TIMES: tuple[tuple[str, str], ...] = (
    ("today", "今天"),
    ("tomorrow", "明天"),
    ("every morning", "每天早上"),
    ("at night", "晚上"),
    ("this weekend", "这个周末"),
    ("yesterday", "昨天"),
)
PLACES: tuple[tuple[str, str], ...] = (
    ("at home", "在家"),
    ("at school", "在学校"),
    ("in the park", "在公园"),
    ("in the hospital", "在医院"),
    ("at the station", "在车站"),
    ("in the kitchen", "在厨房"),
)
ADJECTIVES: tuple[tuple[str, str], ...] = (
    ("very happy", "很高兴"),
    ("very tired", "很累"),
    ("very busy", "很忙"),
    ("hungry", "饿了"),
    ("sick", "病了"),
)

#: Number of templates (see :func:`_render`).
N_TEMPLATES = 4


@dataclass(frozen=True)
class SentencePair:
    """One aligned parallel sentence.

    Attributes:
        en: English sentence (ASCII, ends with ``.`` or ``?``).
        zh: Mandarin sentence (simplified hanzi, ends with ``。`` or ``？``).
        key: stable identity of the pair (template + slot indices), e.g. ``"t0-3-1-4-2"``.
        split: ``train`` | ``dev`` | ``test`` (function of ``en`` only, see :func:`split_of`).
    """

    en: str
    zh: str
    key: str
    split: str


def _render(template: int, idx: tuple[int, ...]) -> tuple[str, str]:
    """(English, Mandarin) of one template with slot indices ``idx``."""
    if template == 0:  # S V O T
        s, v, o, t = SUBJECTS[idx[0]], VERBS[idx[1]], OBJECTS[idx[2]], TIMES[idx[3]]
        return f"{s[0].capitalize()} {v[0]} {o[0]} {t[0]}.", f"{s[1]}{t[1]}{v[1]}{o[1]}。"
    if template == 1:  # S is P T
        s, p, t = SUBJECTS[idx[0]], PLACES[idx[1]], TIMES[idx[2]]
        return f"{s[0].capitalize()} is {p[0]} {t[0]}.", f"{s[1]}{t[1]}{p[1]}。"
    if template == 2:  # S is A T
        s, a, t = SUBJECTS[idx[0]], ADJECTIVES[idx[1]], TIMES[idx[2]]
        return f"{s[0].capitalize()} is {a[0]} {t[0]}.", f"{s[1]}{t[1]}{a[1]}。"
    if template == 3:  # Does S V O?
        s, v, o = SUBJECTS[idx[0]], VERBS[idx[1]], OBJECTS[idx[2]]
        base = v[0][:-2] if v[0].endswith("es") and v[0][-3] in "sh" else v[0][:-1]
        return f"Does {s[0]} {base} {o[0]}?", f"{s[1]}{v[1]}{o[1]}吗？"
    raise ValueError(f"unknown template {template}")


_SLOTS: dict[int, tuple[int, ...]] = {
    0: (len(SUBJECTS), len(VERBS), len(OBJECTS), len(TIMES)),
    1: (len(SUBJECTS), len(PLACES), len(TIMES)),
    2: (len(SUBJECTS), len(ADJECTIVES), len(TIMES)),
    3: (len(SUBJECTS), len(VERBS), len(OBJECTS)),
}
#: Template sampling weights (the S V O T template carries most of the vocabulary).
_TEMPLATE_P = np.array([0.55, 0.15, 0.1, 0.2])


def n_distinct_pairs() -> int:
    """Number of distinct parallel pairs the lexicon can produce (all templates)."""
    return int(sum(np.prod(s) for s in _SLOTS.values()))


def split_of(en: str, *, dev_fraction: float = 0.08, test_fraction: float = 0.08) -> str:
    """Split of a sentence from a hash of its English text (so splits are disjoint by sentence).

    Args:
        en: English sentence.
        dev_fraction, test_fraction: shares of the sentence space in ``dev`` / ``test``.

    Returns:
        ``"train"``, ``"dev"`` or ``"test"``.
    """
    u = int.from_bytes(hashlib.sha256(en.encode()).digest()[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + dev_fraction:
        return "dev"
    return "train"


def generate_pairs(n: dict[str, int], seed: int = 0) -> list[SentencePair]:
    """Draw distinct sentence pairs, ``n[split]`` per split, deterministically from ``seed``.

    Args:
        n: wanted pairs per split, e.g. ``{"train": 400, "dev": 40, "test": 40}``.
        seed: RNG seed (same seed -> same list, same order).

    Returns:
        list of :class:`SentencePair`, ordered by draw; every ``en`` text is distinct.

    Raises:
        ValueError: more pairs asked for than the lexicon can produce.
    """
    want = {k: int(v) for k, v in n.items() if int(v) > 0}
    if sum(want.values()) > n_distinct_pairs() // 2:
        raise ValueError(f"asked for {sum(want.values())} pairs; the lexicon has {n_distinct_pairs()}")
    rng = np.random.default_rng(seed)
    got: dict[str, int] = {k: 0 for k in want}
    seen: set[str] = set()
    out: list[SentencePair] = []
    while any(got[k] < want[k] for k in want):
        t = int(rng.choice(N_TEMPLATES, p=_TEMPLATE_P))
        idx = tuple(int(rng.integers(0, m)) for m in _SLOTS[t])
        en, zh = _render(t, idx)
        if en in seen:
            continue
        seen.add(en)
        sp = split_of(en)
        if sp not in want or got[sp] >= want[sp]:
            continue
        got[sp] += 1
        out.append(SentencePair(en=en, zh=zh, key=f"t{t}-" + "-".join(map(str, idx)), split=sp))
    return out
