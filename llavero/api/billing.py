"""`/v1/plans`, `/v1/billingAccounts` and `/v1/projects/{project}/billingInfo`.

Linking a project to an open billing account moves it to the paid plan at once; unlinking it,
or closing the account, moves it back to `free`. The answer of a link says the new plan."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictBool

from llavero.api.auth import Caller, LlaveroDep, authenticate
from llavero.api.projects import PageSize, PageToken
from llavero.api.schemas import Body
from llavero.service.billing import DEFAULT_CURRENCY, BillingAccount, BillingInfo
from llavero.service.plans import PlanInfo

router = APIRouter(tags=["billing"])


class PlanList(BaseModel):
    plans: list[PlanInfo]


class BillingAccountCreate(Body):
    display_name: str = Field(max_length=1000)
    currency: str = Field(default=DEFAULT_CURRENCY, max_length=100)
    open: StrictBool = True


class BillingAccountUpdate(Body):
    """Only the fields present change: `open: false` closes the account, `true` reopens it."""

    display_name: str | None = Field(default=None, max_length=1000)
    open: StrictBool | None = None


class BillingAccountList(BaseModel):
    billing_accounts: list[BillingAccount]
    next_page_token: str


class BillingInfoUpdate(Body):
    """`billing_account: null` unlinks the project (back to the free plan)."""

    billing_account: str | None = Field(max_length=100)


@router.get("/v1/plans", dependencies=[Depends(authenticate)])
def list_plans(llavero: LlaveroDep) -> PlanList:
    """Every plan and its limits; `null` means unlimited. Any authenticated caller may read."""
    return PlanList(plans=llavero.plans.list())


@router.post("/v1/billingAccounts")
def create_billing_account(
    body: BillingAccountCreate, actor: Caller, llavero: LlaveroDep
) -> BillingAccount:
    return llavero.billing.create(actor, body.display_name, body.currency, body.open)


@router.get("/v1/billingAccounts")
def list_billing_accounts(
    actor: Caller, llavero: LlaveroDep, page_size: PageSize = None, page_token: PageToken = None
) -> BillingAccountList:
    page = llavero.billing.list(actor, page_size=page_size, page_token=page_token)
    return BillingAccountList(billing_accounts=page.items, next_page_token=page.next_page_token)


@router.get("/v1/billingAccounts/{billing_account}")
def get_billing_account(billing_account: str, actor: Caller, llavero: LlaveroDep) -> BillingAccount:
    return llavero.billing.get(actor, billing_account)


@router.patch("/v1/billingAccounts/{billing_account}")
def update_billing_account(
    billing_account: str, body: BillingAccountUpdate, actor: Caller, llavero: LlaveroDep
) -> BillingAccount:
    return llavero.billing.update(
        actor, billing_account, display_name=body.display_name, open=body.open
    )


@router.get("/v1/projects/{project}/billingInfo")
def get_billing_info(project: str, actor: Caller, llavero: LlaveroDep) -> BillingInfo:
    return llavero.billing.info(actor, project)


@router.put("/v1/projects/{project}/billingInfo")
def set_billing_info(
    project: str, body: BillingInfoUpdate, actor: Caller, llavero: LlaveroDep
) -> BillingInfo:
    return llavero.billing.link(actor, project, body.billing_account)
