"""Edge kind `file_mirror`: another service's files shown, read-only, in Nextcloud.

Nextcloud mounts each as an external Local folder, read-only, for every user: the repositories'
checkouts and the wiki's Markdown from the repo sync's volume, Redmine's attachments from its
own volume. The mounts are made by Nextcloud's folders step; the edge records which folder
shows which service.
"""

from __future__ import annotations

import pulumi

from components.base import IntegrationEdge, Service
from components.services.nextcloud import REDMINE_FOLDER, REPOSITORIES_FOLDER, WIKI_FOLDER, Nextcloud

FOLDERS = {"gitea": REPOSITORIES_FOLDER, "wikijs": WIKI_FOLDER, "redmine": REDMINE_FOLDER}


class FileMirrorEdge(IntegrationEdge):
    """`files-<source>`: the folder in Nextcloud that shows `source`'s files."""

    kind = "file_mirror"

    def __init__(self, source: Service, nextcloud: Nextcloud, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"files-{source.service}", source, nextcloud, pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(depends_on=[nextcloud.folders.command]), opts))
        self.folder = FOLDERS[source.service]
        self.register_outputs({"folder": self.folder, "readOnly": True})
