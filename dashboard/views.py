from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.roles import Role
from dashboard.selectors import studies_today


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Each role's dashboard; a user with several roles sees each of their panels."""
    user = request.user
    context: dict = {"today": timezone.localdate()}
    if user.has_role(Role.STAFF):
        context["studies_today"] = list(studies_today(day=context["today"]))
    return render(request, "dashboard/home.html", context)
