import datetime

import factory
from django.utils import timezone

from accounts.models import User
from accounts.roles import Role
from accounts.services import roles_ensure
from imaging.models import BodyPart, Modality, Priority, Study
from patients.models import Patient, Sex


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def role(self, create: bool, extracted: Role | str | None, **kwargs) -> None:
        if extracted:
            self.groups.add(roles_ensure()[str(extracted)])
            if str(extracted) == Role.ADMIN:
                self.is_staff = True
        if create:
            self.save()


class PatientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Patient

    mrn = factory.Sequence(lambda n: f"MRN{n:07d}")
    family_name = factory.Faker("last_name")
    given_name = factory.Faker("first_name")
    birth_date = factory.LazyFunction(lambda: datetime.date(1970, 1, 1))
    sex = Sex.FEMALE


class StudyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Study

    patient = factory.SubFactory(PatientFactory)
    accession_number = factory.Sequence(lambda n: f"ACC{n:08d}")
    modality = Modality.DX
    body_part = BodyPart.CHEST
    study_date = factory.LazyFunction(lambda: timezone.localdate())
    priority = Priority.ROUTINE
