"""The naive view. See the package docstring for why it is written this way."""

import base64
import json
import os
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
from django.db import connection, transaction
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from pesarail.tenants.services import authenticate_api_key

EAT = timezone(timedelta(hours=3))
PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"


def _app() -> tuple[str, str, str]:
    n = int(os.environ.get("NAIVE_APP_INDEX", "0"))
    return f"naive-key-{n}", f"naive-secret-{n}", str(600000 + n)


@csrf_exempt
def pay(request):
    auth = request.headers.get("Authorization", "")
    if authenticate_api_key(auth.removeprefix("Token ").strip()) is None:
        return JsonResponse({"error": "unauthorized"}, status=401)
    data = json.loads(request.body)
    base = os.environ["PESARAIL_SANDBOX_URL"]
    key, secret, shortcode = _app()
    with transaction.atomic():
        payment_id = str(uuid.uuid4())
        with connection.cursor() as cur:
            cur.execute("INSERT INTO bench_naive_payment (id, phone, amount, status) "
                        "VALUES (%s, %s, %s, 'new')", [payment_id, data["phone_number"],
                                                       int(Decimal(data["amount"]))])
        basic = base64.b64encode(f"{key}:{secret}".encode()).decode()
        token = httpx.get(f"{base}/oauth/v1/generate?grant_type=client_credentials",
                          headers={"Authorization": f"Basic {basic}"},
                          timeout=30).json()["access_token"]
        stamp = datetime.now(EAT).strftime("%Y%m%d%H%M%S")
        password = base64.b64encode(f"{shortcode}{PASSKEY}{stamp}".encode()).decode()
        response = httpx.post(f"{base}/mpesa/stkpush/v1/processrequest", timeout=30,
                              headers={"Authorization": f"Bearer {token}"}, json={
            "BusinessShortCode": shortcode, "Password": password, "Timestamp": stamp,
            "TransactionType": "CustomerPayBillOnline", "Amount": int(Decimal(data["amount"])),
            "PartyA": data["phone_number"], "PartyB": shortcode,
            "PhoneNumber": data["phone_number"],
            "CallBackURL": os.environ["PESARAIL_BASE_URL"] + "/naive/callback",
            "AccountReference": "naive", "TransactionDesc": "naive"})
        body = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"push failed: {body}")
        with connection.cursor() as cur:
            cur.execute("UPDATE bench_naive_payment SET status = 'pending', "
                        "checkout_request_id = %s WHERE id = %s",
                        [body["CheckoutRequestID"], payment_id])
    return JsonResponse({"id": payment_id, "checkout_request_id": body["CheckoutRequestID"]},
                        status=201)


@csrf_exempt
def callback(request):
    return HttpResponse('{"ResultCode": 0, "ResultDesc": "Accepted"}',
                        content_type="application/json")
