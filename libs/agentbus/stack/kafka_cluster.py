"""Apache Kafka itself for ``make test-kafka`` and ``make bench KAFKA=1``: a cluster of three nodes in KRaft
combined mode (each node is a broker and a controller; no ZooKeeper), from the jars ``tools/kafka.sh`` fetched
from Maven Central.

Each node runs as ``java -cp '<libs>/*' kafka.Kafka server.properties`` on free ports, its log directory and
log file under the cluster's folder, after ``kafka.tools.StorageTool format`` with the cluster's id. A node
can be SIGKILLed and started again on the same data (what a crashed and restarted broker is), and the node
leading the metadata quorum (the active controller) is asked of the quorum itself with Kafka's
``kafka-metadata-quorum`` tool (``org.apache.kafka.tools.MetadataQuorumCommand``): in KRaft the controller id
that a client's metadata shows is any broker's, not the controller's.

The tests run here when ``AGENTBUS_TEST_KAFKA_LIBS`` names that libs folder (``make test-kafka`` sets it), the
bench when ``--kafka`` does (``make bench KAFKA=1``); ``PLATFORM_ENV`` is what the platform needs on such a
cluster: replication factor 3, ``min.insync.replicas=2``, idempotent producers.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from agentbus.stack.procs import Proc, free_port, port_open

LIBS_ENV = "AGENTBUS_TEST_KAFKA_LIBS"

# what the platform is told on this cluster (by the environment, as a deployment tells it)
PLATFORM_ENV = {
    "AGENTBUS_TOPIC_REPLICATION_FACTOR": "3",
    "AGENTBUS_TOPIC_MIN_INSYNC_REPLICAS": "2",
    "AGENTBUS_KAFKA_IDEMPOTENT_PRODUCER": "true",
}

# Broker settings beyond Kafka's defaults. The broker defaults for topics stay Kafka's own (replication 1,
# min.insync.replicas 1, no auto-creation), so what the platform's topics have is what the platform asked for.
BROKER_SETTINGS = {
    "offsets.topic.replication.factor": "3",
    "offsets.topic.num.partitions": "10",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "3",
    "share.coordinator.state.topic.min.isr": "2",
    "auto.create.topics.enable": "false",
    "unclean.leader.election.enable": "false",
    # the tests' consumers use 2 s sessions (Kafka's least is 6 s by default) and join new groups at once
    "group.min.session.timeout.ms": "1000",
    "group.initial.rebalance.delay.ms": "0",
    # a dead broker is fenced (and leaves the partitions' in-sync sets) after 4 s instead of 9 s
    "broker.heartbeat.interval.ms": "1000",
    "broker.session.timeout.ms": "4000",
    # retention is enforced within a second (the chaos run's topic at its retention limit)
    "log.retention.check.interval.ms": "1000",
    # small: three nodes share two cores and a modest heap each
    "num.network.threads": "2",
    "num.io.threads": "4",
    "num.replica.fetchers": "1",
    "num.recovery.threads.per.data.dir": "2",  # a SIGKILLed node recovers its logs before it serves
    "log.cleaner.threads": "1",
    "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
}


def kafka_libs(value: str | None = None) -> Path | None:
    """The folder of Kafka's jars ``value`` names, by default ``AGENTBUS_TEST_KAFKA_LIBS`` (None: the
    embedded broker); one without the broker's jar is an error, not a silent fallback."""
    value = os.environ.get(LIBS_ENV) if value is None else value
    if not value:
        return None
    libs = Path(value)
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise RuntimeError(f"{value}: no kafka_2.13 jar there (run tools/kafka.sh)")
    return libs


def random_cluster_id() -> str:
    """A cluster id as ``kafka-storage random-uuid`` makes one: 16 random bytes, base64url without padding,
    not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


@dataclass
class Node:
    node_id: int
    port: int  # the clients' listener
    controller_port: int  # the quorum's listener
    home: Path
    proc: Proc | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive


@dataclass
class KafkaCluster:
    libs: Path
    home: Path
    size: int = 3
    heap_mb: int = 384
    settings: dict[str, str] = field(default_factory=dict)  # more broker settings, over BROKER_SETTINGS
    nodes: dict[int, Node] = field(default_factory=dict)
    cluster_id: str = field(default_factory=random_cluster_id)

    def __post_init__(self) -> None:
        self.home = self.home.resolve()
        self.libs = self.libs.resolve()
        for i in range(1, self.size + 1):
            self.nodes[i] = Node(i, free_port(), free_port(), self.home / f"node-{i}")

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes.values())

    @property
    def controllers(self) -> str:
        return ",".join(f"127.0.0.1:{n.controller_port}" for n in self.nodes.values())

    def properties(self, node: Node) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes.values())
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{node.address},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{node.address}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.home / "data"),
            **BROKER_SETTINGS,
            **self.settings,
        }
        return "".join(f"{k}={v}\n" for k, v in props.items())

    def _java(self, main: str, *args: str, heap_mb: int) -> list[str]:
        # the client JIT only and the serial collector: three JVMs share two cores with the platform under
        # test, and start (and restart) sooner without the optimising compiler's and G1's threads; a test's
        # load is far below what either would be needed for
        return ["java", f"-Xmx{heap_mb}m", f"-Xms{min(heap_mb, 128)}m", "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.libs.parent / 'log4j2.properties'}",
                "-cp", f"{self.libs}/*", main, *args]

    async def _run_tool(self, main: str, *args: str, timeout: float = 60) -> str:
        """A Kafka command-line tool in a short-lived JVM; its output, or an error with the output in it."""
        argv = ["java", "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", f"{self.libs}/*", main,
                *args]  # no log4j configuration: Log4j's default, errors only
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        text = out.decode("utf-8", "replace")
        if proc.returncode != 0:
            raise RuntimeError(f"{main} {' '.join(args)} exited {proc.returncode}: {text[-2000:]}")
        return text

    async def _format(self, node: Node) -> None:
        (node.home / "data").mkdir(parents=True, exist_ok=True)
        config = node.home / "server.properties"
        config.write_text(self.properties(node), encoding="utf-8")
        await self._run_tool("kafka.tools.StorageTool", "format", "-t", self.cluster_id, "-c", str(config),
                             timeout=120)

    def _proc(self, node: Node) -> Proc:
        return Proc(
            f"kafka-{node.node_id}",
            self._java("kafka.Kafka", str(node.home / "server.properties"), heap_mb=self.heap_mb),
            ready=lambda: self._node_ready(node),
            log_dir=self.home / "logs",
            echo=False,
        )

    async def start(self, timeout: float = 180) -> None:
        """Format every node's storage, start every node, and wait until each is a registered broker."""
        self.home.mkdir(parents=True, exist_ok=True)
        await asyncio.gather(*(self._format(n) for n in self.nodes.values()))
        for node in self.nodes.values():
            node.proc = self._proc(node)
            await node.proc.start()
        await asyncio.gather(*(n.proc.wait_ready(timeout) for n in self.nodes.values() if n.proc is not None))

    async def _node_ready(self, node: Node) -> bool:
        """The node answers on its listener and the cluster's metadata, as it serves it, lists it as a broker."""
        if not port_open(node.port):
            return False
        return node.node_id in await self.brokers(node.address)

    async def brokers(self, bootstrap: str | None = None) -> set[int]:
        """The ids of the brokers the cluster's metadata lists (alive, registered, not fenced)."""
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap or self.alive_bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
            return {int(b["node_id"]) for b in cluster["brokers"]}
        except Exception:  # not up yet, or the node just went away
            return set()
        finally:
            await admin.close()

    @property
    def alive_bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes.values() if n.alive) or self.bootstrap

    async def active_controller(self, timeout: float = 60) -> int:
        """The id of the running node that leads the metadata quorum, as the quorum's own describe says; while
        an election is on (the leader just died), asked again until one has won."""
        tool_config = self.home / "tool.properties"  # short timeouts: a try that meets the election is retried
        tool_config.write_text("request.timeout.ms=5000\ndefault.api.timeout.ms=8000\n", encoding="utf-8")
        last = ""
        async with asyncio.timeout(timeout):
            while True:
                endpoints = ",".join(f"127.0.0.1:{n.controller_port}" for n in self.nodes.values() if n.alive)
                try:
                    out = await self._run_tool("org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-controller",
                                               endpoints, "--command-config", str(tool_config), "describe",
                                               "--status", timeout=20)
                except (RuntimeError, TimeoutError) as exc:
                    last = str(exc)
                else:
                    found = re.search(r"^LeaderId:\s+(-?\d+)", out, re.MULTILINE)
                    leader = int(found.group(1)) if found else None
                    if leader in self.nodes and self.nodes[leader].alive:
                        return leader
                    last = out
                await asyncio.sleep(0.5)
        raise AssertionError(f"unreachable: no quorum leader ({last[-500:]})")  # pragma: no cover

    async def kill(self, node_id: int) -> None:
        """SIGKILL one node: no controlled shutdown, no flush, no goodbye to the quorum."""
        node = self.nodes[node_id]
        if node.proc is not None:
            node.proc.signal(signal.SIGKILL)
            if node.proc.process is not None:
                await node.proc.process.wait()

    async def restart(self, node_id: int, wait: bool = True, timeout: float = 120) -> None:
        """Start a stopped or killed node again on its own data; with ``wait``, until it is a broker again."""
        node = self.nodes[node_id]
        if node.alive:
            raise RuntimeError(f"kafka node {node_id} is still running")
        node.proc = self._proc(node)
        await node.proc.start()
        if wait:
            await self.wait_ready(node_id, timeout)

    async def wait_ready(self, node_id: int, timeout: float = 120) -> None:
        """Until the (started) node is a registered, unfenced broker again."""
        proc = self.nodes[node_id].proc
        if proc is None:
            raise RuntimeError(f"kafka node {node_id} was never started")
        await proc.wait_ready(timeout)

    async def wait_brokers(self, ids: set[int], timeout: float = 120) -> None:
        """Until the cluster's metadata lists exactly the brokers ``ids``."""
        async with asyncio.timeout(timeout):
            while await self.brokers() != ids:
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        await asyncio.gather(*(n.proc.stop(30) for n in self.nodes.values() if n.proc is not None),
                             return_exceptions=True)
