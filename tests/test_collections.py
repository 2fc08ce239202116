"""Maps, sets and fixed-size arrays across the boundary (SPEC §12): HashMap/BTreeMap <-> dict,
HashSet/BTreeSet <-> set, Vec<Vec<T>>, [T; N], Option<&[T]>, &[i128]/&[u128].

Results are compared with what plain Python computes; every bad input is followed by a good
call to show the module keeps working.
"""

from __future__ import annotations

import array
import collections
import types
import warnings

import numpy as np
import pytest

import rustcall_magic as rc
from rustcall_magic.signature import parse_cell

MAP_CELL = r"""
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Counts the words of a text.
pub fn word_count(text: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for w in text.split_whitespace() { *m.entry(w.to_lowercase()).or_insert(0) += 1; }
    m
}
pub fn totals(m: HashMap<String, Vec<f64>>) -> BTreeMap<String, f64> {
    m.into_iter().map(|(k, v)| (k, v.iter().sum::<f64>() + 0.0)).collect()
}
pub fn scaled(m: HashMap<String, Vec<f64>>, k: f64) -> HashMap<String, Vec<f64>> {
    m.into_iter().map(|(name, v)| (name, v.into_iter().map(|x| x * k).collect())).collect()
}
pub fn invert(m: HashMap<i64, String>) -> BTreeMap<String, i64> { m.into_iter().map(|(k, v)| (v, k)).collect() }
pub fn by_char(m: BTreeMap<char, u8>) -> Vec<(char, u8)> { m.into_iter().collect() }
pub fn key_sum(m: HashMap<u8, f64>) -> f64 { m.iter().map(|(k, v)| *k as f64 * v).sum() }
pub fn sparse(m: HashMap<(i64, i64), f64>) -> HashMap<(i64, i64), f64> { m.into_iter().map(|((i, j), v)| ((j, i), v)).collect() }
pub fn echo_map(m: HashMap<String, i64>) -> HashMap<String, i64> { m }
pub fn maybe(m: Option<HashMap<String, i32>>) -> usize { m.map(|m| m.len()).unwrap_or(0) }
pub fn many(ms: Vec<HashMap<String, i32>>) -> Vec<usize> { ms.iter().map(|m| m.len()).collect() }
pub fn unique(xs: HashSet<i64>) -> BTreeSet<i64> { xs.into_iter().collect() }
pub fn letters(s: BTreeSet<char>) -> String { s.into_iter().collect() }
pub fn shared(a: HashSet<String>, b: HashSet<String>) -> HashSet<String> { a.intersection(&b).cloned().collect() }
pub fn evens(n: u32) -> HashSet<u32> { (0..n).filter(|x| x % 2 == 0).collect() }
"""

SEQ_CELL = r"""
pub fn doubled(v: Vec<Vec<f64>>) -> Vec<Vec<f64>> { v.into_iter().map(|r| r.into_iter().map(|x| 2.0 * x).collect()).collect() }
pub fn row_lens(v: Vec<Vec<i32>>) -> Vec<usize> { v.iter().map(|r| r.len()).collect() }
pub fn triangle(n: usize) -> Vec<Vec<u64>> { (0..n).map(|i| (0..=i as u64).collect()).collect() }
pub fn words(v: Vec<Vec<String>>) -> Vec<Vec<String>> { v.into_iter().map(|mut r| { r.reverse(); r }).collect() }
pub fn normalize(p: [f64; 3]) -> [f64; 3] {
    let n = (p[0] * p[0] + p[1] * p[1] + p[2] * p[2]).sqrt();
    [p[0] / n, p[1] / n, p[2] / n]
}
pub fn rgb(c: [u8; 3]) -> String { format!("#{:02x}{:02x}{:02x}", c[0], c[1], c[2]) }
pub fn pair_names(p: [String; 2]) -> String { p.join(" & ") }
pub fn corners(v: Vec<[i32; 2]>) -> Vec<[i32; 2]> { v.into_iter().map(|[x, y]| [y, x]).collect() }
pub fn total_or(xs: Option<&[f64]>, default: f64) -> f64 { xs.map(|s| s.iter().sum()).unwrap_or(default) }
pub fn fill_opt(xs: Option<&mut [i32]>, v: i32) -> bool { match xs { Some(s) => { for x in s.iter_mut() { *x = v } true } None => false } }
pub fn copy_into(src: &[i32], dst: Option<&mut [i32]>) { if let Some(d) = dst { d.copy_from_slice(&src[..d.len()]) } }
pub fn big_sum(xs: &[i128]) -> i128 { xs.iter().sum() }
pub fn big_max(xs: &[u128]) -> u128 { xs.iter().copied().max().unwrap_or(0) }
"""


def compile_quiet(source: str) -> rc.RustModule:
    with warnings.catch_warnings():
        warnings.simplefilter("error", rc.RustcallWarning)
        return rc.compile_rust(source)


@pytest.fixture(scope="module")
def maps() -> rc.RustModule:
    return compile_quiet(MAP_CELL)


@pytest.fixture(scope="module")
def seqs() -> rc.RustModule:
    return compile_quiet(SEQ_CELL)


TEXT = "the cat and The dog and THE bird"


def python_word_count(text: str) -> dict[str, int]:
    return dict(collections.Counter(w.lower() for w in text.split()))


# ---------------------------------------------------------------------------
# dicts


def test_word_count_returns_the_dict_python_computes(maps):
    got = maps.word_count(TEXT)
    assert type(got) is dict
    assert got == python_word_count(TEXT) == {"the": 3, "cat": 1, "and": 2, "dog": 1, "bird": 1}
    assert maps.word_count("") == {}


def test_str_keys_with_nested_vec_values(maps):
    data = {"a": [1.0, 2.5], "b": [], "c": np.arange(4.0), "d": (1, 2)}
    assert maps.totals(data) == {k: float(sum(v)) for k, v in data.items()}
    assert list(maps.totals({"z": [1], "a": [2]})) == ["a", "z"], "a BTreeMap comes back in key order"
    got = maps.scaled({"x": [1.0, 2.0], "y": [3.0]}, 10.0)
    assert got == {"x": [10.0, 20.0], "y": [30.0]}
    assert all(type(v) is list for v in got.values()), "a Vec inside a dict is a list"


def test_int_char_and_tuple_keys(maps):
    assert maps.invert({1: "one", -2: "minus two", 2**62: "big"}) == {"one": 1, "minus two": -2, "big": 2**62}
    assert maps.by_char({"b": 2, "a": 1}) == [("a", 1), ("b", 2)]
    assert maps.key_sum({2: 0.5, 3: 1}) == 2 * 0.5 + 3 * 1
    assert maps.key_sum({np.uint8(4): np.float64(0.25)}) == 1.0
    assert maps.sparse({(0, 1): 2.0, (5, 3): -1.0}) == {(1, 0): 2.0, (3, 5): -1.0}


def test_any_mapping_is_accepted(maps):
    class Config(collections.abc.Mapping):
        def __init__(self, d: dict) -> None:
            self.d = d

        def __getitem__(self, k):
            return self.d[k]

        def __iter__(self):
            return iter(self.d)

        def __len__(self) -> int:
            return len(self.d)

    src = {"a": 1, "b": -2}
    for m in (src, collections.OrderedDict(src), types.MappingProxyType(src), Config(src), collections.Counter(src)):
        assert maps.echo_map(m) == src
    assert maps.maybe(None) == 0 and maps.maybe({"x": 1}) == 1
    assert list(maps.many([{"a": 1}, {}, {"b": 2, "c": 3}])) == [1, 0, 2]


def test_float_key_for_int_map_is_a_type_error_naming_the_key(maps):
    with pytest.raises(TypeError, match=r"invert\(\) argument 1 \(m: HashMap<i64, String>\) key 1\.5 must be int, not float"):
        maps.invert({1: "a", 1.5: "b"})
    with pytest.raises(TypeError, match=r"key 'x' must be int, not str"):
        maps.invert({"x": "y"})
    with pytest.raises(TypeError, match=r"item \[3\] must be str, not int"):
        maps.invert({3: 4})
    with pytest.raises(OverflowError, match=r"argument 1 \(m: HashMap<u8, f64>\) key 256: 256 is out of range for u8"):
        maps.key_sum({256: 1.0})
    assert maps.invert({1: "a"}) == {"a": 1}


def test_nested_value_errors_name_the_path(maps):
    with pytest.raises(TypeError, match=r"totals\(\) argument 1 \(m: HashMap<String, Vec<f64>>\) item \['b'\]\[1\] must be float, not str"):
        maps.totals({"a": [1.0], "b": [2.0, "x"]})
    with pytest.raises(TypeError, match=r"item \['a'\] must be"):
        maps.totals({"a": 3.0})


def test_non_mappings_are_refused(maps):
    for bad in ([("a", 1)], "ab", 3, {1, 2}, None):
        with pytest.raises(TypeError, match=r"echo_map\(\) argument 1 \(m: HashMap<String, i64>\) must be a dict \(any mapping\)"):
            maps.echo_map(bad)
    assert maps.echo_map({}) == {}


def test_a_dict_changed_while_converting_is_refused(maps):
    d = {"a": 1, "b": 2}

    class Sneaky:
        def __index__(self) -> int:
            d["c"] = 3  # the dict grows while its items convert
            return 7

    d["s"] = Sneaky()
    with pytest.raises(ValueError, match="the dict changed size while it was converted"):
        maps.echo_map(d)


def test_maps_through_the_magic_and_the_jit(ip):
    ip.run_cell_magic("rust", "-q", MAP_CELL)
    assert ip.user_ns["word_count"](TEXT) == python_word_count(TEXT)
    jm = rc.jit_rust(MAP_CELL, quiet=True)
    assert jm.word_count(TEXT) == python_word_count(TEXT)
    assert jm.totals({"a": [1.0, 2.0]}) == {"a": 3.0}
    assert jm.unique([3, 1, 3]) == {1, 3}
    with pytest.raises(TypeError, match=r"key 1\.5 must be int"):
        jm.invert({1.5: "x"})


# ---------------------------------------------------------------------------
# sets


def test_sets_from_any_iterable(maps):
    assert maps.unique([3, 1, 3, 2]) == {1, 2, 3}
    assert type(maps.unique(set())) is set
    assert maps.unique(range(5)) == set(range(5))
    assert maps.unique(x * x for x in (-2, 2, 3)) == {4, 9}
    assert maps.unique(frozenset({7})) == {7}
    assert maps.letters("banana") == "abn", "a str iterates as its characters, as set('banana')"
    assert maps.shared({"a", "b", "c"}, ["b", "c", "d"]) == {"b", "c"}
    assert maps.evens(7) == {0, 2, 4, 6}


def test_set_element_errors(maps):
    with pytest.raises(TypeError, match=r"unique\(\) argument 1 \(xs: HashSet<i64>\) element 'a' must be int, not str"):
        maps.unique([1, "a"])
    with pytest.raises(TypeError, match=r"must be a set \(any iterable\) of i64, not int"):
        maps.unique(5)
    with pytest.raises(TypeError, match=r"a dict is not a set"):
        maps.unique({1: 2})

    def failing():
        yield 1
        raise KeyError("from the generator")

    with pytest.raises(KeyError, match="from the generator"):
        maps.unique(failing())
    assert maps.unique([1]) == {1}


# ---------------------------------------------------------------------------
# Vec<Vec<T>>, [T; N]


def test_list_of_lists_both_ways_ragged(seqs):
    rows = [[1.0], [], [2.0, 3.0, 4.0]]
    assert seqs.doubled(rows) == [[2 * x for x in r] for r in rows]
    assert all(type(r) is list for r in seqs.doubled(rows))
    assert list(seqs.row_lens([[1, 2], (3,), np.arange(5, dtype=np.int32), []])) == [2, 1, 5, 0]
    assert seqs.triangle(4) == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]
    assert seqs.words([["a", "b"], ["c"]]) == [["b", "a"], ["c"]]
    with pytest.raises(TypeError, match=r"row_lens\(\) argument 1 \(v: Vec<Vec<i32>>\) item \[1\]\[0\] must be int, not str"):
        seqs.row_lens([[1], ["x"]])


def test_fixed_size_arrays(seqs):
    assert seqs.normalize([3, 0, 4]) == (0.6, 0.0, 0.8)
    assert seqs.normalize((0.0, 3.0, 4.0)) == (0.0, 0.6, 0.8)
    assert seqs.normalize(np.array([0.0, 0.0, 2.0])) == (0.0, 0.0, 1.0)
    assert seqs.normalize(array.array("d", [1, 0, 0])) == (1.0, 0.0, 0.0)
    assert seqs.rgb([255, 128, 0]) == "#ff8000"
    assert seqs.rgb(b"\x01\x02\x03") == "#010203"
    assert seqs.pair_names(["Ann", "Bob"]) == "Ann & Bob"
    assert seqs.corners([[1, 2], (3, 4)]) == [(2, 1), (4, 3)]


def test_fixed_size_array_of_wrong_length_is_a_value_error(seqs):
    with pytest.raises(ValueError, match=r"normalize\(\) argument 1 \(p: \[f64; 3\]\): expected exactly 3 items, got 2"):
        seqs.normalize([1.0, 2.0])
    with pytest.raises(ValueError, match=r"expected exactly 3 items, got 4"):
        seqs.normalize(np.ones(4))
    with pytest.raises(OverflowError, match=r"item \[1\]: 256 is out of range for u8"):
        seqs.rgb([1, 256, 3])
    with pytest.raises(TypeError, match=r"must be a tuple, list or buffer of exactly 3 u8, not int"):
        seqs.rgb(3)
    with pytest.raises(ValueError, match=r"expected exactly 2 items, got 1"):
        seqs.corners([[1, 2], [3]])
    assert seqs.rgb([0, 0, 0]) == "#000000"


# ---------------------------------------------------------------------------
# Option<&[T]>, &[i128]


def test_optional_slices(seqs):
    assert seqs.total_or(None, -1.0) == -1.0
    assert seqs.total_or([1.0, 2.0], -1.0) == 3.0
    a = np.arange(5.0)
    assert seqs.total_or(a, 0.0) == a.sum()
    with pytest.raises(BufferError, match="not C-contiguous"):
        seqs.total_or(a[::2], 0.0)
    b = np.zeros(3, dtype=np.int32)
    assert seqs.fill_opt(b, 7) is True and b.tolist() == [7, 7, 7]
    assert seqs.fill_opt(None, 7) is False
    with pytest.raises(TypeError, match=r"fill_opt\(\) argument 1 \(xs: Option<&mut \[i32\]>\) must be a writable buffer of i32 items .* or None"):
        seqs.fill_opt("no", 1)
    with pytest.raises(TypeError, match=r"must be a buffer of f64 items .* or a list or None"):
        seqs.total_or("no", 0.0)


def test_optional_mutable_slice_aliasing_is_refused(seqs):
    a = np.arange(6, dtype=np.int32)
    with pytest.raises(ValueError, match=r"copy_into\(\) argument 2 \(dst: Option<&mut \[i32\]>\): shares memory with argument 1"):
        seqs.copy_into(a, a[2:])
    out = np.zeros(3, dtype=np.int32)
    seqs.copy_into(a, out)
    assert out.tolist() == [0, 1, 2]
    seqs.copy_into(a, None)


def test_i128_slices_from_lists(seqs):
    big = [2**100, -(2**90), 5]
    assert seqs.big_sum(big) == sum(big)
    assert seqs.big_sum([]) == 0
    assert seqs.big_sum(range(10)) == 45
    assert seqs.big_sum(np.arange(4)) == 6
    assert seqs.big_sum([2**127 - 1]) == 2**127 - 1
    assert seqs.big_max([2**128 - 1, 0]) == 2**128 - 1
    with pytest.raises(OverflowError, match=r"big_sum\(\) argument 1 \(xs: &\[i128\]\) item \[1\]: .* is out of range for i128"):
        seqs.big_sum([0, 2**127])
    with pytest.raises(OverflowError, match=r"item \[0\]: -1 is out of range for u128"):
        seqs.big_max([-1])
    with pytest.raises(TypeError, match=r"item \[0\] must be int, not float"):
        seqs.big_sum([1.5])
    with pytest.raises(TypeError, match=r"must be a list \(any iterable\) of int, not str"):
        seqs.big_sum("12")
    assert seqs.big_sum([-(2**127)]) == -(2**127)


# ---------------------------------------------------------------------------
# The type table


def test_type_table_rows_and_refusals():
    info = parse_cell(
        "use std::collections::HashMap;\n"
        "pub fn f(m: HashMap<f64, i32>) {}\n"  # f64 is not Eq + Hash
        "pub fn g(m: HashMap<String, &str>) {}\n"  # items of a dict cannot be borrowed
        "pub fn h(s: std::collections::HashSet<Vec<i32>>) {}\n"  # a list is not hashable in Python
        "pub fn k(a: [f64; N]) {}\n"  # lengths must be literals
        "pub fn ok(m: std::collections::BTreeMap<(u8, char), Vec<[f64; 2]>>, o: Option<&[u16]>) -> HashMap<bool, Vec<Vec<i8>>> { todo!() }\n"
    )
    assert [f.name for f in info.functions] == ["ok"]
    assert set(dict(info.skipped)) == {"f", "g", "h", "k"}


STRUCT_CELL = r"""
use std::collections::HashMap;
#[derive(Clone, Debug)]
pub struct Inventory { pub counts: HashMap<String, u32>, pub tags: std::collections::BTreeSet<String> }
impl Inventory {
    pub fn new() -> Self { Inventory { counts: HashMap::new(), tags: Default::default() } }
    pub fn add(&mut self, item: &str, n: u32) { *self.counts.entry(item.to_string()).or_insert(0) += n; }
    pub fn merged(&self, other: HashMap<String, u32>) -> HashMap<String, u32> {
        let mut m = self.counts.clone();
        for (k, v) in other { *m.entry(k).or_insert(0) += v; }
        m
    }
}
"""


def test_map_and_set_fields_of_a_struct():
    Inventory = compile_quiet(STRUCT_CELL).Inventory
    inv = Inventory()
    inv.add("apple", 2)
    inv.add("apple", 1)
    assert inv.counts == {"apple": 3}
    inv.counts = {"pear": 1, "fig": 4}
    inv.tags = ["b", "a", "b"]
    assert inv.counts == {"pear": 1, "fig": 4} and inv.tags == {"a", "b"}
    assert inv.merged({"fig": 1, "kiwi": 2}) == {"pear": 1, "fig": 5, "kiwi": 2}
    with pytest.raises(OverflowError, match="-1 is out of range for u32"):
        inv.counts = {"bad": -1}
    assert inv.counts == {"pear": 1, "fig": 4}
