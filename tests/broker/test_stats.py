"""Message counters and rates (broker/model/stats.py)."""

from broker.model.stats import FIELDS, MessageStats


def test_rates_are_the_increase_per_second_between_samples():
    stats = MessageStats()
    stats.sample(100.0)
    assert stats.rates == {}  # one reading: no rate yet
    stats.publish += 50
    stats.deliver += 10
    stats.get_no_ack += 5
    stats.sample(105.0)
    assert stats.rates["publish"] == 10.0
    shape = stats.message_stats()
    assert shape["publish"] == 50 and shape["publish_details"] == {"rate": 10.0}
    assert shape["deliver_get"] == 15 and shape["deliver_get_details"] == {"rate": 3.0}
    stats.sample(110.0)
    assert stats.rates["publish"] == 0.0


def test_a_sum_keeps_its_previous_sample():
    one, two, total = MessageStats(), MessageStats(), MessageStats()
    total.set_sum([one, two])
    total.sample(0.0)
    one.ack += 3
    two.ack += 7
    total.set_sum([one, two])
    total.sample(2.0)
    assert total.ack == 10 and total.rates["ack"] == 5.0


def test_add_folds_every_counter():
    closed, vhost = MessageStats(), MessageStats()
    for i, name in enumerate(FIELDS):
        setattr(closed, name, i + 1)
    vhost.add(closed)
    vhost.add(closed)
    assert vhost.values() == tuple(2 * (i + 1) for i in range(len(FIELDS)))
    assert vhost.routed == vhost.publish - vhost.return_unroutable - vhost.drop_unroutable
