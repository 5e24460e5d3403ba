"""Edge kind `project_link`: each Redmine project links to its space in the wiki."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.base import IntegrationEdge

if TYPE_CHECKING:
    from components.services.redmine import Redmine
    from components.services.wikijs import WikiJs


class ProjectLinkEdge(IntegrationEdge):
    """`wiki-redmine`: a `Wiki` link on every project's overview to `<wiki>/<project identifier>`;
    Redmine's own wiki module off for new projects, so a project has one wiki."""

    kind = "project_link"

    def __init__(self, redmine: Redmine, wiki: WikiJs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wiki-redmine", redmine, wiki, opts)
        self.settings = redmine.link_wiki(self, wiki.url)
        self.register_outputs({"linkPattern": f"{wiki.url}/%project_identifier%"})
