from agentbus.bus.watermark import Watermark


def test_low_watermark_never_passes_an_unfinished_offset() -> None:
    w = Watermark()
    for o in range(10, 15):
        assert w.add(o)
    assert not w.add(12), "an offset seen before is not dispatched twice"
    w.done(11)
    w.done(13)
    assert w.low() == 10
    w.done(10)
    assert w.low() == 12
    assert w.take_commit() == 12 and w.take_commit() is None
    w.done(12)
    w.done(14)
    assert w.low() == 15
    w.uncommit(12)
    assert w.take_commit() == 15
