"""Who may see and steer runs: staff with the view permission to look (as in the admin),
the action's own permission to act; and bad input answered with 400 and a message."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST

from pipelines.exceptions import InputValueError

VIEW_PERMISSION = "pipelines.view_pipelinerun"


def answers_bad_input(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """An InputValueError from parsing the request becomes a 400 page with its message;
    an unknown run, a 404 page in the dashboard's own style."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except InputValueError as exc:
            return render(request, "pipelines/bad_request.html", {"message": str(exc)}, status=400)
        except Http404 as exc:
            return render(request, "pipelines/not_found.html", {"message": str(exc)}, status=404)

    return wrapper


def viewer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous: to the admin login. Signed in but not staff, or without the view
    permission: 403."""
    answering = answers_bad_input(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied("The pipelines dashboard is for staff users.")
        if not request.user.has_perm(VIEW_PERMISSION):
            raise PermissionDenied(f"You need the {VIEW_PERMISSION} permission to see runs.")
        return answering(request, *args, **kwargs)

    return wrapper


def action(permission: str) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """A state-changing view: a viewer, POST only (405 otherwise; CSRF checked by the
    middleware), and the named permission (403 without)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @viewer_required
        @require_POST
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.has_perm(permission):
                raise PermissionDenied(f"You need the {permission} permission to do this.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
