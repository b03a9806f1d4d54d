"""The service that runs a broker, its listeners and its plugins under twistd."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

from twisted.application.service import IService, Service
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure

from .listeners import ListenError, ListenerService

log = Logger()


class BrokerService(Service):
    """Start and stop a broker with its plugins and listeners, in order.

    Start: the plugin services (an authenticator or authorizer that provides
    ``IService``, the development JWKS server), then ``broker.start()``, which
    restores the stored state, then the listeners.  The listeners open their
    ports in ``privilegedStartService``, but no connection is accepted before
    the reactor runs, which is after ``broker.start()``.

    Stop: the listeners stop accepting, then ``broker.stop()`` ends every
    connection and closes the store, then the plugin services stop.

    SIGHUP calls ``reload()`` on every authenticator and authorizer that has
    one, then ``broker.revalidate_subscriptions()``; connections stay open.
    """

    name = "mqttauth"
    #: The log observer that twistd should use for this application, if any.
    log_observer: ILogObserver | None = None

    def __init__(
        self,
        reactor: Any,
        broker: Any,
        listeners: Sequence[ListenerService],
        *,
        plugin_services: Sequence[IService] = (),
        reloadables: Sequence[tuple[str, Any]] = (),
        startup_lines: Sequence[tuple[str, dict[str, Any]]] = (),
        banner: str | None = None,
    ) -> None:
        self.reactor = reactor
        self.broker = broker
        self.listeners = list(listeners)
        self.plugin_services = list(plugin_services)
        #: ``(label, plugin object)`` for every plugin with a ``reload()``.
        self.reloadables = [
            (label, plugin)
            for label, plugin in reloadables
            if callable(getattr(plugin, "reload", None))
        ]
        self.startup_lines = list(startup_lines)
        self.banner = banner
        self._previous_sighup: Any = None
        self._reloading: Deferred[None] | None = None
        self._reload_again = False

    def setServiceParent(self, parent: Any) -> None:
        """Join ``parent`` and, when it is twistd's application, set its logger.

        twistd creates the application around the service, then starts
        logging to the application's ILogObserver component if it has one.
        """
        super().setServiceParent(parent)
        set_component = getattr(parent, "setComponent", None)
        if self.log_observer is not None and set_component is not None:
            if parent.getComponent(ILogObserver) is None:
                set_component(ILogObserver, self.log_observer)

    # Start-up ------------------------------------------------------------

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        for service in self.plugin_services:
            service.privilegedStartService()
        failure = None
        try:
            for listener in self.listeners:
                listener.privilegedStartService()
        except ListenError as error:
            failure = str(error)
        if failure is not None:
            self._fail(failure)

    def startService(self) -> None:
        super().startService()
        for text, fields in self.startup_lines:
            log.info(text, **fields)
        for service in self.plugin_services:
            service.startService()
        failure = None
        try:
            self.broker.start()
        except Exception as error:
            failure = f"the broker could not restore its state: {error}"
        if failure is not None:
            self._fail(failure)
        for listener in self.listeners:
            listener.startService()
        self._install_sighup()
        log.info(
            "mqttauth started with {count} listener(s); send SIGHUP to reload "
            "authentication and ACL files",
            count=len(self.listeners),
        )
        if self.banner:
            # The banner carries a token: it goes to the terminal, not the log
            # (twistd sends sys.stdout to the log once logging starts).
            stream = sys.__stdout__
            if stream is not None:
                stream.write(self.banner)
                stream.flush()

    def _fail(self, message: str) -> None:
        log.critical("mqttauth cannot start: {message}", message=message)
        # SystemExit ends twistd with status 1 and no traceback, because the
        # line above already states what failed and what to do.
        raise SystemExit(1)

    def listen_failed(self, error: ListenError) -> None:
        """Stop the broker after a listener failed once the reactor ran."""
        log.critical("mqttauth stops: {error}", error=str(error))
        # NOTE: twistd exits with status 0 after reactor.stop().  Only a
        # failure that the endpoint reports at once gives status 1, which is
        # how the tcp:, ssl: and unix: endpoints report theirs.
        if self.reactor.running:
            self.reactor.stop()

    # Shutdown ------------------------------------------------------------

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._remove_sighup()
        stopping = [maybeDeferred(listener.stopService) for listener in self.listeners]
        done: Deferred[Any] = DeferredList(stopping, consumeErrors=True)
        done.addCallback(lambda _: self.broker.stop())
        done.addErrback(self._log_stop_error, "broker")
        done.addCallback(lambda _: self._stop_plugin_services())
        done.addCallback(lambda _: log.info("mqttauth stopped"))
        return done

    def _stop_plugin_services(self) -> Deferred[Any]:
        stopping = [
            maybeDeferred(service.stopService).addErrback(
                self._log_stop_error, getattr(service, "name", None) or repr(service)
            )
            for service in reversed(self.plugin_services)
            if service.running
        ]
        return DeferredList(stopping)

    def _log_stop_error(self, failure: Failure, what: str) -> None:
        log.failure("Stopping {what} failed", failure, what=what)

    # SIGHUP --------------------------------------------------------------

    def _install_sighup(self) -> None:
        if not hasattr(signal, "SIGHUP"):
            return
        self._previous_sighup = signal.signal(signal.SIGHUP, self._on_sighup)

    def _remove_sighup(self) -> None:
        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None

    def _on_sighup(self, signum: int, frame: FrameType | None) -> None:
        # Signal handlers run between bytecodes of the main thread; hand the
        # work to the reactor instead of doing it here.
        self.reactor.callFromThread(self.reload)

    def reload(self) -> Deferred[None]:
        """Reload every plugin that can, then re-check live subscriptions.

        A reload that fails is logged, and the plugin keeps what it had
        (each plugin's ``reload()`` keeps its old state on error).  SIGHUPs
        that arrive during a reload start one more reload after it.
        """
        if self._reloading is not None:
            self._reload_again = True
            return self._reloading
        log.info(
            "SIGHUP: reloading {plugins}",
            plugins=", ".join(label for label, _ in self.reloadables) or "nothing",
        )
        steps = [
            maybeDeferred(plugin.reload).addCallbacks(
                self._reloaded,
                self._reload_failed,
                callbackArgs=(label,),
                errbackArgs=(label,),
            )
            for label, plugin in self.reloadables
        ]
        reloading: Deferred[Any] = DeferredList(steps)
        # Set this before adding the callbacks. When every step has already
        # fired, _reload_done runs inside addBoth, and setting it afterwards
        # would leave a fired Deferred here that swallows every later SIGHUP.
        self._reloading = reloading
        reloading.addCallback(lambda _: self._revalidate())
        reloading.addBoth(self._reload_done)
        return reloading

    def _reloaded(self, result: object, label: str) -> None:
        # The built-in plugins return False when they kept their old state.
        if result is False:
            log.warn(
                "Reloading {plugin} failed; it keeps its previous state", plugin=label
            )
        else:
            log.info("Reloaded {plugin}", plugin=label)

    def _reload_failed(self, failure: Failure, label: str) -> None:
        log.failure(
            "Reloading {plugin} failed; it keeps its previous state",
            failure,
            plugin=label,
        )

    def _revalidate(self) -> Any:
        return maybeDeferred(self.broker.revalidate_subscriptions).addErrback(
            lambda failure: log.failure("Re-checking subscriptions failed", failure)
        )

    def _reload_done(self, result: object) -> None:
        self._reloading = None
        if self._reload_again:
            self._reload_again = False
            self.reload()
