"""A TCP proxy that puts network failures between a real client and a real emulator.

The emulators never fail the way AWS does: they never refuse, stall or cut an
answer half way. Rather than mocking botocore (and testing our mock), tests
point a client at a :class:`FaultProxy` in front of the emulator and break the
connection itself, so the exceptions, timeouts and connection-pool behaviour
are exactly those of production.

One thread owns every socket (a ``selectors`` loop). Mode changes from the test
thread are queued to it and wait until applied, so when ``refuse()`` returns the
port is already closed and when ``hang()`` returns no further byte is forwarded.
"""

from __future__ import annotations

import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

HOST = "127.0.0.1"
PASS_THROUGH = "pass_through"
REFUSE = "refuse"
HANG = "hang"
DROP_AFTER = "drop_after"
SWALLOW = "swallow"

_CHUNK = 65536
#: Stop reading a side while this much is still waiting to be written to the other, so a
#: slow reader cannot make the proxy buffer a whole S3 object.
_BACKLOG_LIMIT = 1 << 20
#: How long a mode change or stop() waits for the loop before giving up: a test must fail, not hang.
_LOOP_REPLY_SECONDS = 5.0
_TARGET_CONNECT_SECONDS = 2.0
_WAKE = "wake"
_LISTENER = "listener"


@dataclass(eq=False)
class _Link:
    """One client connection and its connection to the target (None while held by ``hang``)."""

    client: socket.socket
    target: socket.socket | None
    to_client: bytearray = field(default_factory=bytearray)
    to_target: bytearray = field(default_factory=bytearray)
    #: Target bytes forwarded since ``drop_after`` was set, to know where to cut.
    response_bytes: int = 0
    #: Whether the client has sent since the target last answered: the next client chunk
    #: otherwise starts a new request, which is what ``swallow`` counts.
    awaiting_response: bool = False
    #: Flushing what is left for the client, then closing both sides.
    closing: bool = False


@dataclass(eq=False)
class _Command:
    action: Callable[[], None]
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class FaultProxy:
    """Forwards TCP between clients and *target_url* until told to fail, on a port of 127.0.0.1.

    Modes (switch at any time from any thread; each call returns once in force):

    * :meth:`pass_through` forwards both ways (keep-alive connections work).
    * :meth:`refuse` closes the port and every connection: connecting gets ECONNREFUSED.
    * :meth:`hang` accepts and reads but never forwards nor answers.
    * :meth:`drop_after` cuts each connection after *n_bytes* of answer.
    * :meth:`swallow` closes the connection of the next *requests* requests unanswered.
    """

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"target_url needs a host and a port: {target_url!r}")
        self._target = (parts.hostname, parts.port)
        self._mode = PASS_THROUGH
        self._drop_limit = 0
        self._swallow_left = 0
        self._port: int | None = None
        self._listener: socket.socket | None = None
        self._links: set[_Link] = set()
        self._interest: dict[socket.socket, int] = {}
        self._selector: selectors.BaseSelector | None = None
        self._wake_reader: socket.socket | None = None
        self._wake_writer: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._commands: list[_Command] = []
        self._stopping = False
        self._connections = 0
        self._swallowed = 0

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> "FaultProxy":
        if self._thread is not None:
            raise RuntimeError("FaultProxy already started")
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._watch(self._wake_reader, selectors.EVENT_READ, _WAKE)
        # The port is chosen now even when starting refused, so .url is known from the start.
        self._open_listener()
        if self._mode == REFUSE:
            self._close_listener()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"FaultProxy:{self._port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the port and every connection; safe to call twice, bounded in time."""
        thread = self._thread
        if thread is None:
            return
        with self._lock:
            self._stopping = True
        self._wake()
        thread.join(_LOOP_REPLY_SECONDS)
        self._thread = None
        if thread.is_alive():  # pragma: no cover - the loop is stuck; free what we can anyway
            return
        for command in self._take_commands():
            command.error = RuntimeError("FaultProxy stopped")
            command.done.set()
        assert self._wake_reader is not None and self._wake_writer is not None and self._selector is not None
        self._wake_reader.close()
        self._wake_writer.close()
        self._selector.close()
        self._interest.clear()

    def __enter__(self) -> "FaultProxy":
        return self.start() if self._thread is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("FaultProxy not started: no port yet")
        return f"http://{HOST}:{self._port}"

    @property
    def port(self) -> int | None:
        return self._port

    # --- modes -------------------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        """The mode in force (``swallow`` turns back into ``pass_through`` once spent)."""
        return self._mode

    @property
    def connections(self) -> int:
        """Client connections accepted so far, to tell a reused pooled connection from a new one."""
        with self._lock:
            return self._connections

    @property
    def swallowed(self) -> int:
        """Requests closed unanswered by :meth:`swallow`, to prove a retry really happened."""
        with self._lock:
            return self._swallowed

    def pass_through(self) -> None:
        """Back to normal; connections held by ``hang`` are closed, since the client has given up on them."""
        self._switch(PASS_THROUGH)

    def refuse(self) -> None:
        """Like a service that is down: no listener, and established connections cut."""
        self._switch(REFUSE)

    def hang(self) -> None:
        """Like a black-holed network or a stuck server: only the client's read timeout ends a call.

        Pooled connections stall too, because botocore reuses them: a fault on new
        connections only would miss every call but the first.
        """
        self._switch(HANG)

    def drop_after(self, n_bytes: int) -> None:
        """Cut each connection after *n_bytes* of answer (counted per connection from now).

        An answer shorter than what is left passes whole, and the connection stays open.
        """
        if n_bytes < 0:
            raise ValueError("n_bytes must be >= 0")
        self._switch(DROP_AFTER, drop_limit=n_bytes)

    def swallow(self, requests: int = 1) -> None:
        """Close the connection of the next *requests* requests unanswered, then pass through.

        A request is the first client chunk on a connection since it opened or since
        the target last answered on it: the failure AWS gives when a connection dies
        after the request left, the case where retrying may repeat a write.
        """
        if requests < 1:
            raise ValueError("requests must be >= 1")
        self._switch(SWALLOW, swallow_left=requests)

    def _switch(self, mode: str, drop_limit: int = 0, swallow_left: int = 0) -> None:
        def apply() -> None:
            self._apply(mode, drop_limit, swallow_left)

        if self._thread is None:
            # Not running: no socket to touch, only the state start() will act on.
            self._mode, self._drop_limit, self._swallow_left = mode, drop_limit, swallow_left
            return
        command = _Command(apply)
        with self._lock:
            self._commands.append(command)
        self._wake()
        if not command.done.wait(_LOOP_REPLY_SECONDS):
            raise RuntimeError(f"FaultProxy loop did not apply {mode!r} within {_LOOP_REPLY_SECONDS} s")
        if command.error is not None:
            raise command.error

    # --- the loop (every method below runs on the proxy thread, or before it starts) ---------------

    def _apply(self, mode: str, drop_limit: int, swallow_left: int) -> None:
        previous = self._mode
        self._mode, self._drop_limit, self._swallow_left = mode, drop_limit, swallow_left
        if mode == REFUSE:
            self._close_listener()
            self._close_all_links()
            return
        if previous == HANG and mode != HANG:
            self._close_all_links()
        if self._listener is None:
            self._open_listener()
        for link in list(self._links):
            if mode == HANG:
                # Nothing read before the hang reaches the other side either.
                link.to_client.clear()
                link.to_target.clear()
                if link.closing:
                    self._close_link(link)
                    continue
            if mode == DROP_AFTER:
                link.response_bytes = 0
            self._update_interest(link)

    def _run(self) -> None:
        assert self._selector is not None
        try:
            while True:
                for key, events in self._selector.select(timeout=1.0):
                    if key.data == _WAKE:
                        self._drain_wake()
                    elif key.data == _LISTENER:
                        self._accept()
                    else:
                        link, side = key.data
                        self._on_ready(link, side, events)
                for command in self._take_commands():
                    try:
                        command.action()
                    except BaseException as exc:  # handed to the caller, who re-raises it
                        command.error = exc
                    command.done.set()
                with self._lock:
                    if self._stopping:
                        return
        finally:
            self._close_all_links()
            self._close_listener()

    def _take_commands(self) -> list[_Command]:
        with self._lock:
            commands, self._commands = self._commands, []
        return commands

    def _wake(self) -> None:
        try:
            if self._wake_writer is not None:
                self._wake_writer.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a full pipe already wakes the loop; a closed one means stopped

    def _drain_wake(self) -> None:
        assert self._wake_reader is not None
        try:
            while self._wake_reader.recv(_CHUNK):
                pass
        except BlockingIOError:
            pass

    def _open_listener(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        # The same port again after refuse(), despite its old connections in TIME_WAIT.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((HOST, self._port or 0))
        except OSError:
            listener.close()
            raise
        listener.listen(64)
        listener.setblocking(False)
        self._port = listener.getsockname()[1]
        self._listener = listener
        self._watch(listener, selectors.EVENT_READ, _LISTENER)

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._discard(self._listener)
            self._listener = None

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            with self._lock:
                self._connections += 1
            target = None
            if self._mode != HANG:
                try:
                    target = socket.create_connection(self._target, timeout=_TARGET_CONNECT_SECONDS)
                except OSError:
                    client.close()  # the target itself is down: so is the proxy, for this client
                    continue
            link = _Link(client, target)
            for sock in (client, target):
                if sock is not None:
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._links.add(link)
            self._update_interest(link)

    def _on_ready(self, link: _Link, side: str, events: int) -> None:
        if link not in self._links:
            return  # closed earlier in this batch of events
        sock = link.client if side == "client" else link.target
        if sock is None:
            return
        if events & selectors.EVENT_WRITE:
            self._flush(link, side, sock)
        if link in self._links and events & selectors.EVENT_READ:
            self._receive(link, side, sock)
        if link in self._links:
            if link.closing and not link.to_client:
                self._close_link(link)
            else:
                self._update_interest(link)

    def _flush(self, link: _Link, side: str, sock: socket.socket) -> None:
        pending = link.to_client if side == "client" else link.to_target
        try:
            sent = sock.send(pending)
        except BlockingIOError:
            return
        except OSError:
            self._close_link(link)
            return
        del pending[:sent]

    def _receive(self, link: _Link, side: str, sock: socket.socket) -> None:
        try:
            data = sock.recv(_CHUNK)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if side == "client":
            self._from_client(link, data)
        else:
            self._from_target(link, data)

    def _from_client(self, link: _Link, data: bytes) -> None:
        if not data:
            self._close_link(link)  # the client gave up; nobody is left to answer
            return
        if self._mode == HANG:
            return
        if self._mode == SWALLOW and not link.awaiting_response:
            self._swallow_left -= 1
            with self._lock:
                self._swallowed += 1
            if self._swallow_left <= 0:
                self._mode = PASS_THROUGH
            self._close_link(link)
            return
        link.awaiting_response = True
        link.to_target += data

    def _from_target(self, link: _Link, data: bytes) -> None:
        if not data:
            # Close the target side now, the client side once it has what was already read.
            self._discard_target(link)
            if self._mode != HANG:
                link.closing = True
            return
        if self._mode == HANG:
            return
        link.awaiting_response = False
        if self._mode == DROP_AFTER:
            room = max(self._drop_limit - link.response_bytes, 0)
            data = data[:room]
            link.response_bytes += len(data)
            if link.response_bytes >= self._drop_limit:
                self._discard_target(link)
                link.closing = True
        link.to_client += data

    def _update_interest(self, link: _Link) -> None:
        sides = (
            ("client", link.client, link.to_client, link.to_target),
            ("target", link.target, link.to_target, link.to_client),
        )
        for side, sock, outgoing, incoming in sides:
            if sock is None:
                continue
            events = 0
            if not link.closing and (self._mode == HANG or len(incoming) < _BACKLOG_LIMIT):
                events |= selectors.EVENT_READ
            if outgoing:
                events |= selectors.EVENT_WRITE
            self._watch(sock, events, (link, side))

    def _watch(self, sock: socket.socket, events: int, data: Any) -> None:
        assert self._selector is not None
        current = self._interest.get(sock)
        if events == current:
            return
        if events == 0:
            self._selector.unregister(sock)
            del self._interest[sock]
        elif current is None:
            self._selector.register(sock, events, data)
            self._interest[sock] = events
        else:
            self._selector.modify(sock, events, data)
            self._interest[sock] = events

    def _discard(self, sock: socket.socket) -> None:
        if sock in self._interest:
            if self._selector is not None:
                self._selector.unregister(sock)
            del self._interest[sock]
        sock.close()

    def _discard_target(self, link: _Link) -> None:
        if link.target is not None:
            self._discard(link.target)
            link.target = None

    def _close_link(self, link: _Link) -> None:
        self._discard_target(link)
        self._discard(link.client)
        self._links.discard(link)

    def _close_all_links(self) -> None:
        for link in list(self._links):
            self._close_link(link)
