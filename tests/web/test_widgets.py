"""web.widgets.Select writes the HTML Django's Select templates write, for every case the pages use."""

import pytest
from django import forms
from django.http import QueryDict

from inference.forms import WorklistFilterForm
from web.widgets import Select

pytestmark = pytest.mark.django_db

QUERIES = [
    "",
    "status=reviewed&modality=MR&priority=1&sort=-patient",
    "priority=9&sort=sideways&modality=<b>&status=",  # invalid: errors, aria-invalid
    "model=cxr-pneumonia&received_from=2024-01-01",
]


@pytest.mark.parametrize("query", QUERIES)
def test_worklist_filters_render_as_django_would(query):
    form = WorklistFilterForm(QueryDict(query) or None)
    form.is_valid()
    selects = [name for name, field in form.fields.items() if isinstance(field.widget, Select)]
    assert selects == ["modality", "status", "priority", "model", "sort"]
    for name in selects:
        bound = form[name]
        fast = str(bound)
        bound.field.widget.__class__ = forms.Select  # the same widget through Django's templates
        try:
            assert fast == str(bound)
        finally:
            bound.field.widget.__class__ = Select


@pytest.mark.parametrize(
    ("choices", "value", "attrs"),
    [
        ([("", "—"), ("a&b", 'Say "hi" <now>'), ("x", "X")], "a&b", {"id": "id_f", "required": True}),
        ([(1, "One"), (2, "Two")], 2, {"disabled": False, "data-x": "it's"}),
        ([("g", [("a", "A"), ("b", "B")]), ("c", "C")], "b", None),  # groups
        ([(1, 1), (2, 2)], 1, None),  # labels the template would localise
        ([], "", {"class": "c"}),
    ],
)
def test_select_renders_as_django_would(choices, value, attrs):
    assert Select(choices=choices).render("f", value, attrs) == forms.Select(choices=choices).render("f", value, attrs)
