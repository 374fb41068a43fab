"""The applier process's collector: survivors of a batch are frozen, and a periodic full
collection still finds cyclic garbage that was frozen by mistake."""
import gc
import weakref

from cellfeed.applyproc import Collector


class Node:
    pass


def test_batches_survivors_are_frozen_and_a_full_collection_still_frees_cycles():
    gc.unfreeze()
    try:
        collector = Collector(every=3600)
        a, b = Node(), Node()
        a.other, b.other = b, a                # a cycle ...
        gone = weakref.ref(a)
        collector.after_batch()                # ... frozen while still referenced
        assert gc.get_freeze_count() > 0
        del a, b                               # now cyclic garbage, but frozen:
        gc.collect()
        assert gone() is not None              # an ordinary collection cannot see it
        collector.next_full = 0                # the minute is up
        collector.after_batch()
        assert gone() is None                  # the full collection freed it
        assert gc.get_freeze_count() > 0       # and froze the survivors again
    finally:
        gc.unfreeze()
