"""Edge kind `repository_mirror`: Redmine reads project repositories from mirrors it can see.

Redmine reads Git only from a local path: the repo sync keeps a bare mirror of each project
repository on a volume Redmine mounts read-only, registers it with Redmine's repository web
service and asks Redmine to fetch on every push. This edge makes Redmine turn commit messages
into links (`refs #12`) and status changes (`fixes #12` resolves task 12).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.base import IntegrationEdge

if TYPE_CHECKING:
    from components.services.gitea import Gitea
    from components.services.redmine import Redmine


class RepositoryMirrorEdge(IntegrationEdge):
    """`commits-redmine`: Redmine's commit settings, under the edge, after its bootstrap."""

    kind = "repository_mirror"

    def __init__(self, redmine: Redmine, gitea: Gitea, opts: pulumi.ResourceOptions | None = None):
        super().__init__("commits-redmine", redmine, gitea, opts)
        self.settings = redmine.link_commits(self)
        self.register_outputs({"refs": "refs, references, IssueID", "fixes": "fixes, closes, resolves -> Resolved"})
