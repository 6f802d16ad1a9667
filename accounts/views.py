from django.contrib import messages
from django.contrib.auth import views as auth_views

from accounts.forms import LoginForm
from audit.access import audit_exempt


@audit_exempt("the sign-in form (logins are recorded by audit.logins)")
class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


@audit_exempt("signs out (recorded by audit.logins)")
class LogoutView(auth_views.LogoutView):
    # Django only logs out on POST, so a link in an e-mail or an image tag cannot sign anyone out.

    def post(self, request, *args, **kwargs):
        was_signed_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        # On a shared workstation the next person should see that the last session really ended.
        if was_signed_in:
            messages.success(request, "You are signed out.")
        return response
