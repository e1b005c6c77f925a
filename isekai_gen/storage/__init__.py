"""Build folders on local disk or on object storage (``--out s3://bucket/prefix``): see ``remote``."""

from .images import RemoteFile, fetch_images, image_store, worker_sources
from .remote import Session, is_url, local_path, mirror_path, opened, push_journal_line, refresh_journals, remote_of

__all__ = ["RemoteFile", "Session", "fetch_images", "image_store", "is_url", "local_path", "mirror_path", "opened",
           "push_journal_line", "refresh_journals", "remote_of", "worker_sources"]
