"""Edge kind `git_storage`: Wiki.js keeps its pages as Markdown in a Gitea repository.

Wiki.js's Git storage in sync mode: a page edit becomes a commit pushed to the repository, and
a commit pushed there becomes a page on the next sync. Wiki.js signs in to Gitea as a bot of its
own, whose token can write repositories and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components.base import IntegrationEdge
from components.providers import gitea as gitea_api
from components.providers import wikijs as wikijs_api

if TYPE_CHECKING:
    from components.services.gitea import Gitea
    from components.services.wikijs import WikiJs

BOT = "ceres-wiki"
REPOSITORY = "wiki"
BRANCH = "main"
# Writes its own repositories; reads its own profile (the provider checks whose token it is).
BOT_SCOPES = "write:repository,read:user"


class GitStorageEdge(IntegrationEdge):
    """`wiki-git-storage`: the `ceres-wiki/wiki` repository and Wiki.js's Git storage target.

    The repository belongs to the bot, not to the projects organisation, so the organisation's
    chat hook does not post page edits a second time: the wiki's own push hook (`chat-wikijs`)
    does, as Wiki.js.
    """

    kind = "git_storage"

    def __init__(self, wiki: WikiJs, gitea: Gitea, opts: pulumi.ResourceOptions | None = None):
        super().__init__("wiki-git-storage", wiki, gitea, opts)
        self.owner, self.repository_name = BOT, REPOSITORY
        token = gitea.bot_account(self, BOT, BOT_SCOPES)
        self.repository = gitea_api.Repository(
            "wiki-repository",
            owner=BOT,
            repo_name=REPOSITORY,
            description="The wiki's pages as Markdown, kept in sync by Wiki.js: edit here or in the wiki",
            default_branch=BRANCH,
            **{**gitea.api_access(), "token": token},
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Wiki.js reaches Gitea on the edge network they share, not through the proxy.
        self.repo_url = f"{gitea.internal_url}/{BOT}/{REPOSITORY}.git"
        self.storage = wikijs_api.GitStorage(
            "wiki-git-storage",
            api_url=wiki.reachable_url,
            token=wiki.api_key,
            repo_url=self.repo_url,
            branch=BRANCH,
            username=BOT,
            password=token,
            author_name="Wiki.js",
            author_email=f"{BOT}@{wiki.domain}",
            verify_tls=wiki.verify_tls,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.repository]),
        )
        self.register_outputs({"repository": f"{BOT}/{REPOSITORY}", "branch": BRANCH})
