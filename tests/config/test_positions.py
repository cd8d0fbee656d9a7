"""Positions of problems in a config, now that a loaded document keeps no node graph: an
entry's position is kept, a deeper one is found by reading that entry (or the file) again."""

from abonnement.config.yamlpos import Mark, load_document

TEXT = """\
# a comment
settings:
  account: Acme
  payments: {processor: test,
     accepted_methods: [card]}
base: &base
  currency: USD
subscriptions:
  - <<: *base
    id: s1
    contact: Åse Ødegård
  - {id: s2, contact: c,
     items: [{product: q}]}
  -   id: s3
      items:
        - product: z
          quantity: 3

  - plain
"""


def test_positions_of_entries_and_of_values_inside_them() -> None:
    doc = load_document(TEXT, "subs.yaml")
    assert doc.data["subscriptions"][0] == {"id": "s1", "contact": "Åse Ødegård",
                                            "currency": "USD"}  # fmt: skip
    mark = doc.mark
    assert mark(()) == Mark(2, 1)
    assert mark(("settings",)) == Mark(2, 1)  # a block value: its key's line
    assert mark(("subscriptions", 1)) == Mark(12, 5)
    assert mark(("subscriptions", 2)) == Mark(14, 7)
    assert mark(("subscriptions", 3)) == Mark(19, 5)
    assert mark(("subscriptions", 9)) == Mark(9, 3)  # no such entry: the list
    # inside an entry that uses an anchor written elsewhere: the file is read again
    assert mark(("subscriptions", 0, "contact")) == Mark(11, 14)
    assert mark(("subscriptions", 0, "contact"), key=True) == Mark(11, 5)
    # inside a flow entry spanning two lines, and a block entry, as written
    assert mark(("subscriptions", 1, "items", 0, "product")) == Mark(13, 24)
    assert mark(("subscriptions", 2, "items", 0, "quantity")) == Mark(17, 21)
    assert mark(("subscriptions", 2, "items", 0, "nope")) == Mark(16, 11)
    assert mark(("settings", "payments", "accepted_methods", 0)) == Mark(5, 25)
    assert mark(("nope", 1)) == Mark(2, 1)


def test_a_valid_document_holds_no_node_graph() -> None:
    doc = load_document(TEXT, "subs.yaml")
    assert doc._root is None and doc._entry is None
    doc.mark(("subscriptions", 2, "items", 0, "quantity"))
    assert doc._root is None  # one entry was read again, not the file


def test_a_file_that_is_not_a_mapping_is_walked_whole() -> None:
    doc = load_document("- a\n- [b, {c: d}]\n", "case.yaml")
    assert doc.mark((1, 1, "c")) == Mark(2, 11)
    assert doc.mark((0,)) == Mark(1, 3)
