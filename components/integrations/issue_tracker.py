"""Edge kind `issue_tracker`: a project repository's issues live in Redmine, not in Gitea.

The repo sync sets each repository's external tracker (`/issues/{index}` on Redmine's public
URL), so `#12` in Gitea links to task 12, for repositories made before or after it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.base import IntegrationEdge

if TYPE_CHECKING:
    from components.services.gitea import Gitea
    from components.services.redmine import Redmine
    from components.services.repo_sync import RepoSync


class IssueTrackerEdge(IntegrationEdge):
    """`tracker-gitea`: what the repo sync writes into each project repository."""

    kind = "issue_tracker"

    def __init__(self, gitea: Gitea, redmine: Redmine, sync: RepoSync, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tracker-gitea", gitea, redmine, pulumi.ResourceOptions.merge(
            pulumi.ResourceOptions(depends_on=[sync.container.container]), opts))
        self.issue_url_format = f"{redmine.url}/issues/{{index}}"
        self.register_outputs({"externalTrackerFormat": self.issue_url_format, "style": "numeric"})
