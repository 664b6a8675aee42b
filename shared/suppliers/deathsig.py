"""Imported only by the simulator processes' fork server (its preload): the kernel kills it when
its parent, the host, dies, and the simulator processes it forked die with it in turn
(`shared.suppliers.processes`). Never import it anywhere else: the importing process would die
with its own parent."""

from __future__ import annotations

import signal

from shared.suppliers.processes import die_with_parent

die_with_parent(signal.SIGKILL)
