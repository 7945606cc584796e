"""The static report site: an index of events and one aligned page per event."""

from pipeline.report.site import SiteResult, build_site, report_dir

__all__ = ["SiteResult", "build_site", "report_dir"]
