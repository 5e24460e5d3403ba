"""Pulumi dynamic providers (httpx) for the APIs no published provider covers."""
