"""The typed stack spec: what one CERES stack is, read from the `ceres:*` Pulumi config.

Pure pydantic, no Pulumi import, so every rule here is testable without an engine.
Defaults live in `stacks/tiers.py` (one place); these models only say what is allowed.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

IMAGE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._/:-]*[a-z0-9_-](@sha256:[0-9a-f]{64})?$")


def matching(pattern: str, hint: str, flags: int = 0) -> AfterValidator:
    """A string rule: the value must match `pattern`; `hint` says what is allowed."""
    compiled = re.compile(pattern, flags)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise ValueError(hint)
        return value

    return AfterValidator(check)


def pinned_image(value: str) -> str:
    """An image reference with an explicit version tag or digest, never `latest`."""
    if not IMAGE_PATTERN.match(value):
        raise ValueError("is not a valid image reference (registry/name:tag, lowercase)")
    name, _, digest = value.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        raise ValueError("has no version tag: pin one, e.g. name:1.2.3")
    if last.endswith(":latest"):
        raise ValueError("uses the moving tag 'latest': pin a version, e.g. name:1.2.3")
    return value


def bare_domain(value: str) -> str:
    if "://" in value or "/" in value:
        raise ValueError("give the bare domain without scheme or path, e.g. example.com")
    return value


def private_subnet(value: str) -> str:
    try:
        network = ipaddress.IPv4Network(value)
    except ValueError:
        raise ValueError("must be an IPv4 network in CIDR form, e.g. 10.213.0.0/24") from None
    if not network.is_private or not 16 <= network.prefixlen <= 28:
        raise ValueError("must be a private IPv4 network from /16 to /28, free on that host, e.g. 10.213.0.0/24")
    return str(network)


def cron(value: str) -> str:
    fields = value.split()
    if len(fields) != 5 or not all(re.match(r"^[0-9*/,-]+$", f) for f in fields):
        raise ValueError("must be a 5-field cron expression, e.g. '0 3 * * *'")
    return value


Image = Annotated[str, AfterValidator(pinned_image)]
Domain = Annotated[str, AfterValidator(bare_domain), matching(
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$",
    "must be a lowercase DNS name with at least two labels, e.g. ceres.example.com")]
Subdomain = Annotated[str, matching(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", "must be one DNS label: lowercase letters, digits and '-'")]
Email = Annotated[str, matching(r"^[^@\s]+@[a-z0-9.-]+\.[a-z]{2,}$", "must be an e-mail address, e.g. ops@example.com", re.IGNORECASE)]
HostName = Annotated[str, matching(r"^[a-z][a-z0-9-]{0,30}$", "must start with a letter and use lowercase letters, digits and '-' (at most 31)")]
DockerUrl = Annotated[str, matching(r"^(unix:///.+|ssh://[A-Za-z0-9._-]+@[A-Za-z0-9.-]+(:\d{1,5})?)$", "must be unix:///path/to/docker.sock or ssh://user@host[:port]")]
InterfaceName = Annotated[str, matching(r"^[a-zA-Z0-9_.-]{1,15}$", "must be a network interface name, e.g. eth0 or ens18")]
Version = Annotated[str, matching(r"^\d+\.\d+\.\d+$", "must be an exact version, e.g. 4.0.7")]
IPv4 = Annotated[str, matching(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$", "must be an IPv4 address free on the hosts' network, e.g. 10.0.0.100")]
# Mattermost channel names and Gitea's Slack-type `channel` agree on this alphabet.
ChannelName = Annotated[str, matching(r"^[a-z0-9_-]{1,64}$", "must be 1-64 of lowercase letters, digits, '-' and '_'")]
# Gitea's rule for user and organisation names is wider (AlphaDashDot, 40); this also makes a fine URL path.
OrganizationName = Annotated[str, matching(r"^[a-z][a-z0-9-]{1,39}$", "must start with a letter, then 1-39 lowercase letters, digits or '-'")]
TeamName = Annotated[str, matching(r"^[a-z][a-z0-9-]{1,63}$", "must start with a letter, then 1-63 lowercase letters, digits or '-'")]
Cron = Annotated[str, AfterValidator(cron)]
PrivateSubnet = Annotated[str, AfterValidator(private_subnet)]
HttpsUrl = Annotated[str, matching(r"^https://\S+$", "must be an https:// URL")]
EndpointHost = Annotated[str, matching(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$", "must be the store's host name without scheme, port or path, e.g. s3.eu-central-1.amazonaws.com")]
BucketName = Annotated[str, matching(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", "must be an S3 bucket name: 3-63 lowercase letters, digits, '.' and '-'")]
RegionName = Annotated[str, matching(r"^[a-z0-9][a-z0-9-]{0,62}$", "must be a region name, e.g. eu-central-1 (most self-hosted stores take us-east-1)")]
BucketPath = Annotated[str, matching(r"^(/[A-Za-z0-9_.-]+)+$", "must be an absolute prefix inside the bucket, e.g. /pgbackrest")]
# restic repositories CERES can hand credentials to: a path on the apps host, or S3 with the object store's keys.
ResticRepository = Annotated[str, matching(
    r"^(/[A-Za-z0-9_./-]+|s3:https?://[a-z0-9.-]+(:\d{1,5})?/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9_./-]*)?)$",
    "must be a path on the apps host (/var/backups/ceres) or s3:https://<endpoint>/<bucket>[/prefix], whose keys are the"
    " secret settings backup_s3_access_key and backup_s3_secret_key (other restic backends need credentials CERES does"
    " not hand to the backup container)")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSpec(Strict):
    """One service of the platform: whether it runs and which image it runs."""

    enabled: bool
    image: Image
    memory_mb: int = Field(ge=64, le=65536)
    # Public services are routed by Caddy at https://<subdomain>.<domain>.
    subdomain: Subdomain | None = None


class MattermostSpec(ServiceSpec):
    # Team Edition is free; Redis caching and native OpenID need an Enterprise licence.
    edition: Literal["team", "enterprise"]


class GiteaSpec(ServiceSpec):
    # The organisation that holds project repositories; its webhook posts their events to chat.
    organization: OrganizationName


class Services(Strict):
    keycloak: ServiceSpec
    nextcloud: ServiceSpec
    gitea: GiteaSpec
    mattermost: MattermostSpec
    redmine: ServiceSpec
    wikijs: ServiceSpec
    postgres: ServiceSpec
    redis: ServiceSpec
    grafana: ServiceSpec
    prometheus: ServiceSpec
    alertmanager: ServiceSpec
    loki: ServiceSpec
    alloy: ServiceSpec
    tempo: ServiceSpec
    otel_collector: ServiceSpec
    cadvisor: ServiceSpec
    postgres_exporter: ServiceSpec
    redis_exporter: ServiceSpec
    caddy: ServiceSpec
    oauth2_proxy: ServiceSpec
    uptime_kuma: ServiceSpec
    portainer: ServiceSpec
    backup: ServiceSpec
    repo_sync: ServiceSpec

    def get(self, name: str) -> ServiceSpec:
        return getattr(self, name)


SERVICE_NAMES: tuple[str, ...] = tuple(Services.model_fields)


class InternalTls(Strict):
    """Caddy's own CA: for dev and for names no public CA can reach."""

    mode: Literal["internal"]


class AcmeTls(Strict):
    """Certificates from an ACME CA (Let's Encrypt by default) for public names."""

    mode: Literal["acme"]
    email: Email
    ca_url: HttpsUrl = "https://acme-v02.api.letsencrypt.org/directory"




Tls = Annotated[Union[InternalTls, AcmeTls], Field(discriminator="mode")]

HostRole = Literal["apps", "ha"]


class DockerHost(Strict):
    """A Docker engine the stack deploys to, and what it is for."""

    name: HostName
    url: DockerUrl
    roles: tuple[HostRole, ...] = Field(min_length=1)
    # The edge network's subnet, fixed so that Caddy has a known address the apps can trust
    # as their only proxy. Change it if it overlaps a network on that host.
    edge_subnet: PrivateSubnet = "10.213.0.0/24"
    # The private address the other hosts reach this one at: the HA members talk host to host.
    address: IPv4 | None = None




class HaImages(Strict):
    """The HA tier's pinned images; Patroni has no official one, so it is installed (at `patroni`,
    a PyPI version) into the pinned PostgreSQL image on each host."""

    patroni: Version
    etcd: str
    haproxy: str
    keepalived_base: str


class HaSpec(Strict):
    """The production high-availability tier (Patroni + etcd, Redis Sentinel, HAProxy + Keepalived)."""

    enabled: bool
    etcd_members: int
    postgres_members: int
    redis_sentinels: int
    synchronous_mode: bool
    virtual_ip: IPv4 | None = None
    virtual_ip_prefix: int = Field(default=24, ge=8, le=32)
    # The network interface of the HAProxy hosts that carries the virtual IP.
    interface: InterfaceName = "eth0"
    images: HaImages



class Channels(Strict):
    """Mattermost channels each kind of event goes to."""

    dev: ChannelName
    projects: ChannelName
    ops: ChannelName
    alerts: ChannelName
    files: ChannelName



class ChatSpec(Strict):
    team: TeamName
    channels: Channels



class SmtpSpec(Strict):
    """An outside mail relay: the fallback that reaches people when chat is down."""

    host: str
    port: int = Field(ge=1, le=65535)
    from_address: Email
    username: str | None = None
    starttls: bool = True
    # Who alert e-mail goes to (Alertmanager's critical alerts, Uptime Kuma's monitors).
    alert_recipients: tuple[Email, ...] = Field(min_length=1)



class ObjectStoreSpec(Strict):
    """An S3-compatible bucket off the stack's hosts (AWS S3, MinIO, Ceph RGW...): backups must
    outlive the hosts they protect. Its keys are the secret settings backup_s3_access_key and
    backup_s3_secret_key."""

    endpoint: EndpointHost
    bucket: BucketName
    region: RegionName
    # "host": bucket.endpoint (AWS); "path": endpoint/bucket (most self-hosted stores).
    uri_style: Literal["host", "path"] = "host"
    port: int = Field(default=443, ge=1, le=65535)


class PointInTimeSpec(Strict):
    """The prod PostgreSQL cluster's WAL archive and physical backups (pgBackRest) in the object
    store: a restore reaches any moment since the oldest kept full backup."""

    full_every_days: int = Field(ge=1, le=35)
    diff_every_hours: int = Field(ge=1, le=168)
    # Full backups kept; with full_every_days, how far back a restore can reach.
    retention_full: int = Field(ge=1, le=12)
    path: BucketPath


class BackupSpec(Strict):
    schedule: Cron
    repository: ResticRepository
    keep_daily: int = Field(ge=1)
    keep_weekly: int = Field(ge=0)
    keep_monthly: int = Field(ge=0)
    object_store: ObjectStoreSpec | None = None
    point_in_time: PointInTimeSpec



GroupName = Annotated[str, matching(r"^[a-z][a-z0-9-]{1,63}$", "must start with a letter, then 1-63 lowercase letters, digits or '-'")]
RealmName = Annotated[str, matching(r"^[a-z][a-z0-9-]{1,35}$", "must start with a letter, then 1-35 lowercase letters, digits or '-'")]


class SsoSpec(Strict):
    """Single sign-on: one Keycloak realm; admin rights in every app follow one group."""

    realm: RealmName
    admin_group: GroupName
    user_group: GroupName
    # More places an app may send people back to after sign-in (a second host name, a desktop
    # client's callback): per app, each an https URL on the stack's domain.
    extra_redirect_uris: dict[str, tuple[HttpsUrl, ...]] = Field(default_factory=dict)


class StackSpec(Strict):
    """Everything one stack needs, validated before any resource is registered."""

    tier: Literal["dev", "prod"]
    domain: Domain
    tls: Tls
    services: Services
    hosts: tuple[DockerHost, ...] = Field(min_length=1)
    ha: HaSpec
    chat: ChatSpec
    smtp: SmtpSpec | None = None
    backup: BackupSpec
    sso: SsoSpec
    # Edge id -> False switches a catalog edge off; True insists on it (config fails if it cannot be built).
    integrations: dict[str, bool] = Field(default_factory=dict)


    def enabled(self, service: str) -> bool:
        return self.services.get(service).enabled

    def public_url(self, service: str) -> str:
        subdomain = self.services.get(service).subdomain or service
        return f"https://{subdomain}.{self.domain}"

    def host_for(self, role: HostRole) -> DockerHost:
        return next(host for host in self.hosts if role in host.roles)

    def hosts_with(self, role: HostRole) -> list[DockerHost]:
        return [host for host in self.hosts if role in host.roles]


# Secret settings are kept out of the spec: they stay Pulumi secrets and are read where used.
SECRET_SETTINGS: dict[str, str] = {
    "smtp_password": "password for ceres:smtp.username at the mail relay",
    "backup_s3_access_key": "access key id for the bucket in ceres:backup.object_store (and an s3: backup.repository)",
    "backup_s3_secret_key": "secret access key for the bucket in ceres:backup.object_store (and an s3: backup.repository)",
}
