"""Fails when a faust-streaming or aiokafka upgrade moves what the Tansu accommodations patch."""

from __future__ import annotations

import inspect

from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from app.worker import tansu_compat


def test_the_patched_upstream_code_is_where_we_expect_it() -> None:
    create = inspect.getsource(AIOKafkaConsumerThread._create_worker_consumer)
    leave = inspect.getsource(GroupCoordinator._maybe_leave_group)
    highwaters = inspect.getsource(AIOKafkaConsumerThread._highwaters)
    if not tansu_compat._applied:
        assert "fetch_max_wait_ms=1500" in create, "faust changed how it sets fetch_max_wait_ms"
        assert "self.generation > 0" in leave, "aiokafka changed its LeaveGroup condition"
        assert "end_offsets" in highwaters, "faust changed how it reads end offsets"


def test_apply_replaces_each_target_once() -> None:
    tansu_compat.apply()
    first = (
        AIOKafkaConsumerThread._create_worker_consumer,
        GroupCoordinator._maybe_leave_group,
        AIOKafkaConsumerThread._highwaters,
    )
    assert GroupCoordinator._maybe_leave_group is tansu_compat._leave_group_from_generation_zero
    tansu_compat.apply()
    again = (
        AIOKafkaConsumerThread._create_worker_consumer,
        GroupCoordinator._maybe_leave_group,
        AIOKafkaConsumerThread._highwaters,
    )
    assert first == again
