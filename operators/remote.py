"""The depth server from Blender: Test Connection, Refresh Balance, Get Tokens, Fetch Pending Results
(Generate Again is Generate Depth with ``force``). Network calls run on a worker thread in the UI
(the result shows when it comes) and synchronously in background mode."""

import bpy
from bpy.props import FloatProperty

from ..bridge.prefs import addon_preferences
from ..bridge.redraw import redraw
from ..bridge.remote import fetch, messages, pending
from ..bridge.remote.account import account, describe
from ..bridge.remote.online import check_online, client_for
from ..engine.errors import FathomError
from ._worker import WorkerModal, poll_idle


class _AskServer:
    """Refresh the cached account (balance, prices, top-up page) of the configured server and key."""

    def execute(self, context):
        try:
            client = client_for(context)
            check_online(url=client.base_url)
        except FathomError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if bpy.app.background:  # headless: synchronous, the answer is the report
            return self._report(account.refresh(client))
        account.refresh_in_background(client)
        self.report({"INFO"}, f"Asking {client.base_url}...")
        return {"FINISHED"}

    def _report(self, view):
        if view.error:
            self.report({"ERROR"}, view.error)
            return {"CANCELLED"}
        self.report({"INFO"}, describe(view))
        return {"FINISHED"}


class FATHOM_OT_test_connection(_AskServer, bpy.types.Operator):
    """Connect to the depth server with the API key and show the account and its balance"""

    bl_idname = "fathom.test_connection"
    bl_label = "Test Connection"


class FATHOM_OT_refresh_balance(_AskServer, bpy.types.Operator):
    """Ask the depth server for the current token balance and prices"""

    bl_idname = "fathom.refresh_balance"
    bl_label = "Refresh Balance"


class FATHOM_OT_get_tokens(bpy.types.Operator):
    """Open the depth server's page for buying tokens in the web browser"""

    bl_idname = "fathom.get_tokens"
    bl_label = "Get Tokens"

    def execute(self, context):
        prefs = addon_preferences(context)
        view = account.view(prefs.server_url, prefs.api_key)
        url = view.top_up_url if view is not None else None
        if not url:
            self.report(
                {"ERROR"},
                "The depth server does not name a page for getting tokens: ask its operator "
                "(or press Refresh Balance if it was unreachable).",
            )
            return {"CANCELLED"}
        bpy.ops.wm.url_open(url=url)
        self.report({"INFO"}, f"Opened {url}; press Refresh Balance once you have tokens")
        return {"FINISHED"}


class FATHOM_OT_fetch_pending(WorkerModal, bpy.types.Operator):
    """Download the paid depth maps this file is still waiting for from the depth server, into their
    nodes; failed ones are dropped (the server refunded them)"""

    bl_idname = "fathom.fetch_pending"
    bl_label = "Fetch Pending Results"
    bl_options = {"UNDO"}  # not REGISTER: never re-run from Adjust Last Operation (see generate_depth)

    follow_seconds: FloatProperty(
        name="Wait",
        default=30.0,
        min=0.0,
        max=3600.0,
        options={"SKIP_SAVE"},
        description="How long to wait for a job the server is still computing",
    )

    @classmethod
    def poll(cls, context):
        if not pending.entries():
            cls.poll_message_set("No depth maps are pending in this file")
            return False
        return poll_idle(cls)

    def execute(self, context):
        if not bpy.app.background and context.window is not None:
            # A popup, a menu or a script in the UI calls execute: the server wait still runs on the
            # worker, with the progress bar and Esc, and Blender never waits for the server.
            return self.invoke(context, None)
        return super().execute(context)

    def make_job(self, context, interactive):
        return fetch.fetch_job(context, follow_seconds=self.follow_seconds)

    def worker_done(self, context, job):
        said = job.apply(context)
        left = len(pending.entries())
        fetched = sum(1 for o in job.outcomes if o.job is not None)
        for message in said:
            print(f"Fathom: {message}")
        problems = [messages.split(m) for o, m in zip(job.outcomes, said) if o.job is None]
        if len(job.outcomes) == 1 and problems:  # one job: its own outcome leads
            summary = problems[0]
        else:
            headline = messages.fetch_summary(fetched, len(job.outcomes), left)
            summary = messages.Message(headline, " ".join(str(p) for p in problems))
        messages.report(self, "WARNING" if left or problems else "INFO", summary)
        redraw(context.window_manager)
        return {"FINISHED"}


classes = (FATHOM_OT_test_connection, FATHOM_OT_refresh_balance, FATHOM_OT_get_tokens, FATHOM_OT_fetch_pending)
