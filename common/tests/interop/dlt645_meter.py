"""A DL/T 645-2007 meter from an implementation we did not write (PyPI `dlt645`), for
common/tests/dlt645_interop.rs: serves on a free 127.0.0.1 port, prints "ready PORT", and
serves until stdin closes."""
import sys

from dlt645 import MeterServerService

meter = MeterServerService.new_tcp_server("127.0.0.1", 0, 5.0)
# The package compares the frame's address bytes as sent (low byte first) with this: the wire
# order of the printed address 000102030425.
meter.set_address(bytes([0x25, 0x04, 0x03, 0x02, 0x01, 0x00]))
meter.set_00(0x00010000, 1206.42)   # forward active total, kWh
meter.set_00(0x00000000, 1206.42)   # combined active total, kWh
meter.set_02(0x02010100, 220.1)     # phase-A voltage, V
meter.set_02(0x02020100, 12.345)    # phase-A current, A
if not meter.start():
    sys.exit("the dlt645 server did not start")
print("ready", meter.server.port, flush=True)
sys.stdin.read()
meter.stop()
