"""Test factories. Secrets are produced by the real services so tests use real keys."""

from __future__ import annotations

from dataclasses import dataclass

import factory

from pesarail.tenants import services
from pesarail.tenants.models import Customer, Merchant, User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"staff{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.test")


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    name = factory.Sequence(lambda n: f"Merchant {n}")
    country = "KE"
    default_currency = "KES"


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        skip_postgeneration_save = True

    merchant = factory.SubFactory(MerchantFactory)
    username = factory.Sequence(lambda n: f"customer{n}")
    name = factory.Faker("name")
    phone_number = "+254708374149"

    @factory.post_generation
    def password(obj: Customer, create: bool, extracted: str | None, **kwargs: object) -> None:
        obj.set_password(extracted or "correct-horse-battery")
        if create:
            obj.save()


@dataclass
class Tenant:
    """A merchant with a working secret key and one customer with a login token."""

    merchant: Merchant
    api_key: str
    customer: Customer
    customer_token: str


def make_tenant(name: str = "Shop") -> Tenant:
    merchant, new = services.create_merchant(name)
    customer = CustomerFactory(merchant=merchant)
    return Tenant(merchant=merchant, api_key=new.secret, customer=customer,
                  customer_token=services.issue_customer_token(customer))
