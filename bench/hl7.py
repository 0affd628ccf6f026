"""HL7 benchmark: ORM^O01 orders per second over one MLLP connection, stored and ACKed by
the gateway (SQLite, synchronous=FULL), against a bare asyncio MLLP echo (frames in, a
fixed ACK out, no parsing, no storage) in its own process, both driven by this client.

Prints one JSON line with ``gateway_msgs``, ``echo_msgs`` (messages/s) and ``ratio``.
Usage: .venv/bin/python -m bench.hl7 [--messages N]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from datetime import date

from bench.common import emit, scratch, wait_port
from hl7.mllp import FrameDecoder, encode_frame
from hl7.mllp_client import MLLPConnection
from tests.fixtures.orders.helpers import ack_code, orm
from tests.support.gateway_proc import GatewayProcess
from tests.support.net import free_port

FIXED_ACK = b"MSH|^~\\&|ECHO|X|HIS|X|20260101000000||ACK^O01^ACK|1|P|2.5\rMSA|AA|1\r"


async def _echo_server(port: int) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = FrameDecoder()
        frame = encode_frame(FIXED_ACK)
        while data := await reader.read(65536):
            for _ in decoder.feed(data):
                writer.write(frame)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def _messages(count: int, prefix: str) -> list[bytes]:
    today = date.today().strftime("%Y%m%d")
    return [
        orm(
            f"{prefix}{i}",
            patient_id=f"{prefix}P{i % 500}",
            name="NGUYỄN^VĂN AN",
            placer=f"{prefix}L{i}",
            accession=f"{prefix}A{i}",
            start=f"{today}{8 + i % 10:02d}{i % 60:02d}00",
        )
        for i in range(count)
    ]


async def _drive(port: int, messages: list[bytes]) -> float:
    """Send every message on one connection, each after the previous ACK; msgs/s."""
    async with MLLPConnection("127.0.0.1", port, timeout=60) as conn:
        start = time.perf_counter()
        for msg in messages:
            ack = await conn.send(msg)
            if ack_code(ack) != "AA":
                raise RuntimeError(f"not accepted: {ack[:200]!r}")
        return len(messages) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo_server:
        asyncio.run(_echo_server(args.echo_server))
        return
    result: dict[str, object] = {"bench": "hl7", "messages": args.messages}

    port = free_port()
    echo = subprocess.Popen([sys.executable, "-m", "bench.hl7", "--echo-server", str(port)])
    try:
        wait_port(port)
        asyncio.run(_drive(port, _messages(200, "W")))
        echo_rate = asyncio.run(_drive(port, _messages(args.messages, "E")))
    finally:
        echo.terminate()
        echo.wait()

    with scratch("risgate-bench-hl7-") as work:
        gw = GatewayProcess(
            work / "gateway",
            f"sqlite:///{work / 'gateway' / 'risgate.db'}",
            {"log": {"level": "WARNING"}},
        )
        gw.start()
        try:
            asyncio.run(_drive(gw.hl7_port, _messages(200, "W")))
            gateway_rate = asyncio.run(_drive(gw.hl7_port, _messages(args.messages, "G")))
        finally:
            gw.stop()

    result["gateway_msgs"] = round(gateway_rate, 1)
    result["echo_msgs"] = round(echo_rate, 1)
    result["ratio"] = round(gateway_rate / echo_rate, 3)
    result["durable"] = "sqlite synchronous=FULL, raw + order + ACK in one transaction"
    emit(result)


if __name__ == "__main__":
    main()
