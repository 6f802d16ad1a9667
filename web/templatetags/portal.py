"""Template helpers for the clinical pages."""

from datetime import datetime, timedelta
from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils import timezone

from accounts.policy import Act, Resource
from accounts.policy import may as policy_may
from imaging.dicom import DICOM_CONTENT_TYPE
from web.formatting import percent_text

register = template.Library()


@register.filter
def has_role(user, role: str) -> bool:
    return bool(user.is_authenticated and user.has_role(role))


@register.filter
def percent(value) -> str:
    """0.8734 -> '87.3%' (never '100.0%' for a value below 1); empty when there is no value."""
    if value is None or value == "":
        return ""
    return percent_text(value)


@register.filter
def percent_number(value) -> str:
    """The 0..100 number for aria-valuenow."""
    return "" if value is None or value == "" else f"{float(value) * 100:.1f}"


@register.filter
def bar_width(value) -> str:
    """A CSS width for a 0..1 value, clamped, with a dot decimal whatever the locale."""
    if value is None or value == "":
        return "0%"
    return f"{min(max(float(value), 0.0), 1.0) * 100:.1f}%"


@register.filter
def probabilities_sorted(probabilities) -> list[tuple[str, float]]:
    """Every class probability, most likely first."""
    if not probabilities:
        return []
    return sorted(probabilities.items(), key=lambda item: item[1], reverse=True)


@register.filter
def waiting(since: datetime | None) -> str:
    """How long something has waited, in the largest two units: '2 h 05 min', '3 d 4 h', '12 min'."""
    if since is None:
        return ""
    seconds = max(int((timezone.now() - since).total_seconds()), 0)
    return duration_text(timedelta(seconds=seconds))


@register.filter
def overdue(since: datetime | None, minutes: int = 60) -> bool:
    """Whether something has waited longer than ``minutes`` (default one hour)."""
    return since is not None and timezone.now() - since > timedelta(minutes=int(minutes))


@register.filter
def wait_text(seconds: float | None) -> str:
    """An expected wait in words: 'none', 'about 40 s', 'about 3 min'."""
    if not seconds:
        return "none"
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    return f"about {duration_text(timedelta(seconds=seconds))}"


def duration_text(delta: timedelta) -> str:
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min"
    return "under 1 min"


# Browsers cannot show .dcm: DICOM images are shown through their PNG rendering.
THUMBNAIL_PX = 320


def _is_dicom(image) -> bool:
    return image.content_type == DICOM_CONTENT_TYPE


@register.filter
def thumbnail_url(image) -> str:
    if _is_dicom(image):
        return f"{reverse('pages:image-render', args=[image.id])}?size={THUMBNAIL_PX}"
    return reverse("pages:image-thumbnail", args=[image.id])


@register.filter
def display_url(image) -> str:
    """The full image for the viewer: the DICOM rendering, else the 8-bit PNG of the upload."""
    if _is_dicom(image):
        return reverse("pages:image-render", args=[image.id])
    return reverse("pages:image-display", args=[image.id])


@register.filter
def viewer_url(study) -> str:
    """The study in the OHIF Viewer (imaging.viewer); "" for a study that came in without a StudyInstanceUID."""
    if not study.study_instance_uid:
        return ""
    query = urlencode({"StudyInstanceUIDs": study.study_instance_uid})
    return f"{reverse('pages:viewer-route', args=['viewer'])}?{query}"


@register.filter
def may(user, rule: str) -> bool:
    """``user|may:"patient.read"``: the access policy, as the views behind the links apply it."""
    resource, act = rule.split(".")
    return policy_may(user, Resource(resource), Act(act))


@register.simple_tag
def bar_chart(chart, chart_id: str):
    """A ``web.charts.BarChart`` as inline SVG: ``{% bar_chart queue_chart "queue-chart" %}``."""
    return chart.svg(chart_id)
