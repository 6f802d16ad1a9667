from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.policy import Act, Resource, allowed_roles
from api.mixins import AuditedListApi
from audit.access import audit_access, audited
from audit.models import AuditAction, AuditInterface
from patients.filters import PatientFilter
from patients.models import Patient, Sex
from patients.services import patient_create, patient_update


class PatientOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ("id", "mrn", "family_name", "given_name", "birth_date", "sex", "created_at", "updated_at")


class PatientListApi(AuditedListApi):
    """Patients. Staff register and search them (accounts.policy says why radiologists do not)."""

    required_roles = {
        "GET": allowed_roles(Resource.PATIENT, Act.SEARCH),
        "POST": allowed_roles(Resource.PATIENT, Act.WRITE),
    }
    serializer_class = PatientOutputSerializer
    filterset_class = PatientFilter
    queryset = Patient.objects.all()

    class InputSerializer(serializers.Serializer):
        mrn = serializers.CharField(max_length=64)
        family_name = serializers.CharField(max_length=120)
        given_name = serializers.CharField(max_length=120, required=False, allow_blank=True, default="")
        birth_date = serializers.DateField(required=False, allow_null=True, default=None)
        sex = serializers.ChoiceField(choices=Sex.choices, required=False, default=Sex.UNKNOWN)

    @staticmethod
    def audit_patient(row: Patient):
        return row.pk

    @extend_schema(summary="List patients")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Register a patient",
        request=InputSerializer,
        responses={status.HTTP_201_CREATED: PatientOutputSerializer},
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient = patient_create(**serializer.validated_data, created_by=request.user)
        audit_access(request, action=AuditAction.CREATE, obj=patient)
        return Response(PatientOutputSerializer(patient).data, status=status.HTTP_201_CREATED)


@audited(AuditInterface.API)
class PatientDetailApi(APIView):
    required_roles = {
        "GET": allowed_roles(Resource.PATIENT, Act.READ),
        "PATCH": allowed_roles(Resource.PATIENT, Act.WRITE),
    }

    class InputSerializer(serializers.Serializer):
        mrn = serializers.CharField(max_length=64, required=False)
        family_name = serializers.CharField(max_length=120, required=False)
        given_name = serializers.CharField(max_length=120, required=False, allow_blank=True)
        birth_date = serializers.DateField(required=False, allow_null=True)
        sex = serializers.ChoiceField(choices=Sex.choices, required=False)

    @extend_schema(summary="Read a patient", responses=PatientOutputSerializer)
    def get(self, request, patient_id):
        patient = get_object_or_404(Patient, id=patient_id)
        audit_access(request, action=AuditAction.READ, obj=patient)
        return Response(PatientOutputSerializer(patient).data)

    @extend_schema(summary="Correct a patient's details", request=InputSerializer, responses=PatientOutputSerializer)
    def patch(self, request, patient_id):
        patient = get_object_or_404(Patient.objects.select_for_update(), id=patient_id)
        serializer = self.InputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        patient = patient_update(patient=patient, **serializer.validated_data)
        audit_access(
            request, action=AuditAction.UPDATE, obj=patient, detail=",".join(sorted(serializer.validated_data))
        )
        return Response(PatientOutputSerializer(patient).data)
