"""engine.read_ahead: pages read by a thread one page ahead, same pages, same errors, no leak."""

import threading
import time

import pytest

from sync.connectors import connector_class
from sync.engine import read_ahead


def test_same_pages_in_order_with_what_the_reader_prepared():
    pages = [[1, 2], [3], [4, 5, 6]]
    assert list(read_ahead(iter(pages))) == [(p, None) for p in pages]
    assert list(read_ahead(iter(pages), prepare=sum)) == [([1, 2], 3), ([3], 3), ([4, 5, 6], 15)]


def test_the_switch_interval_is_shortened_while_reading_and_restored_after(settings):
    import sys

    settings.SYNC_READ_AHEAD_SWITCH = 0.0002
    before = sys.getswitchinterval()
    ahead = read_ahead(iter([[1], [2]]))
    next(ahead)
    assert sys.getswitchinterval() == pytest.approx(0.0002)
    list(ahead)
    assert sys.getswitchinterval() == before


def test_a_reading_error_is_raised_in_its_place():
    def pages():
        yield ["a"]
        yield ["b"]
        raise OSError("disk gone")

    got = []
    with pytest.raises(OSError, match="disk gone"):
        for page, _ in read_ahead(pages()):
            got.append(page)
    assert got == [["a"], ["b"]]


def test_reads_at_most_one_page_ahead_and_stops_with_the_caller():
    read = []

    def pages():
        for n in range(100):
            read.append(n)
            yield [n]

    ahead = read_ahead(pages())
    assert next(ahead) == ([0], None)
    time.sleep(0.3)
    assert len(read) <= 3  # the page handed out, one waiting, one being offered
    ahead.close()
    time.sleep(0.3)
    assert not [t for t in threading.enumerate() if t.name == "sync-read-ahead"]
    assert len(read) <= 3


def test_only_connectors_that_declare_it_read_ahead():
    assert connector_class("csv").read_ahead is True
    assert connector_class("bottlecrm").read_ahead is False  # reads over HTTP with shared state
