"""Demo sentence generator: determinism, size, split disjointness by sentence."""

from __future__ import annotations

import pytest

from uniss.unist import lexicon


def test_thousands_of_distinct_pairs():
    assert lexicon.n_distinct_pairs() >= 4000


def test_same_seed_same_pairs_other_seed_other_pairs():
    a = lexicon.generate_pairs({"train": 50, "dev": 5, "test": 5}, seed=3)
    b = lexicon.generate_pairs({"train": 50, "dev": 5, "test": 5}, seed=3)
    c = lexicon.generate_pairs({"train": 50, "dev": 5, "test": 5}, seed=4)
    assert a == b
    assert [p.en for p in a] != [p.en for p in c]
    assert sum(p.split == "train" for p in a) == 50 and sum(p.split == "test" for p in a) == 5


def test_splits_are_disjoint_by_sentence_across_seeds_and_sizes():
    small = lexicon.generate_pairs({"train": 100, "dev": 20, "test": 20}, seed=0)
    big = lexicon.generate_pairs({"train": 900, "dev": 80, "test": 80}, seed=1)
    train = {p.en for p in small + big if p.split == "train"} | {p.zh for p in small + big if p.split == "train"}
    test = {p.en for p in small + big if p.split == "test"} | {p.zh for p in small + big if p.split == "test"}
    assert train and test and not train & test
    for p in small + big:  # the split is a function of the sentence alone
        assert p.split == lexicon.split_of(p.en)


def test_pairs_are_aligned_and_short():
    for p in lexicon.generate_pairs({"train": 200, "dev": 0, "test": 0}, seed=0):
        assert p.en[0].isupper() and p.en[-1] in ".?"
        assert p.zh[-1] in "。？" and not any("a" <= ch.lower() <= "z" for ch in p.zh)
        assert 3 <= len(p.en.split()) <= 9 and 4 <= len(p.zh) <= 18
    assert lexicon._render(3, (0, 0, 0)) == ("Does my mother like green tea?", "我妈妈喜欢绿茶吗？")
    assert lexicon._render(0, (2, 1, 4, 0)) == ("The teacher buys a new book today.", "老师今天买一本新书。")


def test_too_many_pairs_is_an_error():
    with pytest.raises(ValueError, match="lexicon has"):
        lexicon.generate_pairs({"train": 10**6}, seed=0)
