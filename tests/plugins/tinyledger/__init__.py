"""TinyLedger: a fourth, minimal system, plugged into Accord from outside its tree.

Everything the system needs is in this package (settings, connector, mapper, sandbox); the one line below
is its whole registration. An installed package would name ``plugin:SYSTEM`` as an ``accord.systems``
entry point instead.
"""

from accord.config.systems import register
from tests.plugins.tinyledger.plugin import SYSTEM

register(SYSTEM)
