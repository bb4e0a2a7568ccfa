"""Lab 04 with aiokafka: a member of click-processors that prints its rebalances and messages.

Install: pip install aiokafka
Run:     python3 consumer_aiokafka.py BOOTSTRAP   (Ctrl-C leaves the group cleanly)
"""
import asyncio
import signal
import sys

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

BOOTSTRAP = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:9092"


class ShowRebalances(ConsumerRebalanceListener):
    async def on_partitions_revoked(self, revoked):
        print("revoked:", sorted(tp.partition for tp in revoked), flush=True)

    async def on_partitions_assigned(self, assigned):
        print("assigned:", sorted(tp.partition for tp in assigned), flush=True)


async def main():
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        group_id="click-processors",
        client_id="lab04-aiokafka",
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
        # Members of one group must agree on an assignor. Offering both of librdkafka's defaults
        # lets this consumer join a group of page instances or of other clients.
        partition_assignment_strategy=(RangePartitionAssignor, RoundRobinPartitionAssignor),
    )
    await consumer.start()
    consumer.subscribe(["user-clicks"], listener=ShowRebalances())
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    print(f"partition {record.partition} offset {record.offset}: "
                          f"{record.value.decode()}", flush=True)
    finally:
        # stop() commits and sends LeaveGroup: the group rebalances at once.
        await consumer.stop()


asyncio.run(main())
