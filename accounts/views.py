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
    pass
