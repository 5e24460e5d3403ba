"""Edge kind `chat_webhook`: an event source posts to a channel of the Mattermost hub.

The source builds the edge in its own constructor (`chat=` keyword, like `postgres=`); the edge
creates a Mattermost incoming webhook locked to the channel and hands the source its URL, a
secret: the hook's id is the credential. Sources post Slack-format payloads, which Mattermost's
incoming webhooks accept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.base import IntegrationEdge, Service

if TYPE_CHECKING:
    from components.services.mattermost import Mattermost


class ChatWebhookEdge(IntegrationEdge):
    """`chat-<source>`: the source's own incoming webhook into one channel of the hub.

    `channel` is a purpose key of `spec.chat.channels` (dev, projects, ops, alerts, files), so a
    stack renames channels in one place. `hook_url` is on the platform's networks
    (http://mattermost:8065/hooks/<id>): sources never leave the Docker host to post.
    """

    kind = "chat_webhook"

    def __init__(
        self,
        source: Service,
        hub: Mattermost,
        channel: str,
        *,
        username: str,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__(f"chat-{source.service.replace('_', '-')}", source, hub, opts)
        self.channel_name = hub.channel_name(channel)
        self.username = username
        self.hook = hub.incoming_webhook(self, channel, username=username, description=self.edge.mechanism)
        self.hook_url: pulumi.Output[str] = pulumi.Output.secret(
            pulumi.Output.concat(hub.internal_url, "/hooks/", self.hook.hook_id)
        )
        self.register_outputs({"channel": self.channel_name, "username": username})
