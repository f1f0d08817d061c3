"""The demo's pipelines: order fulfilment uses every transition and the context;
paying for an order waits for an event and compensates when the payment is declined."""

from __future__ import annotations

from typing import Any

from pipelines import Pipeline, Route, Step, WaitForEvent, start


class ValidateOrder(Step):
    retries = 0

    def execute(self, order: dict[str, Any]) -> dict[str, Any]:
        if not order.get("items"):
            raise ValueError("an order needs at least one item")
        self.context.set("customer_id", order["customer_id"])
        self.context.set("order_total", sum(i["price"] * i["qty"] for i in order["items"]))
        return dict(order)


class ChargeCard(Step):
    retry_backoff = 0.5

    def execute(self, order: dict[str, Any]) -> dict[str, Any]:
        total = self.context.get("order_total")
        # The idempotency key is stable across retries: a payment provider deduplicates on it.
        self.context.set("charge_id", f"ch_{self.idempotency_key}")
        return {"charged": total}


class ReserveStock(Step):
    def execute(self, order: dict[str, Any]) -> dict[str, Any]:
        return {"reserved": [item["sku"] for item in order["items"]]}


class PlanShipments(Step):
    def execute(self, results: list[dict[str, Any]]) -> list[str]:
        charge, stock = results
        self.context.set("charged", charge["charged"])
        return stock["reserved"]  # one parcel per SKU


class PackParcel(Step):
    def execute(self, sku: str) -> dict[str, Any]:
        return {"sku": sku, "parcel": f"parcel-{sku.lower()}"}


class ChooseCarrier(Step):
    def execute(self, parcels: list[dict[str, Any]]) -> Route:
        self.context.set("parcels", [p["parcel"] for p in parcels])
        return Route("express" if len(parcels) > 1 else "standard", parcels)


class ExpressCarrier(Step):
    def execute(self, parcels: list[dict[str, Any]]) -> dict[str, Any]:
        return {"carrier": "express", "parcels": len(parcels)}


class StandardCarrier(Step):
    def execute(self, parcels: list[dict[str, Any]]) -> dict[str, Any]:
        return {"carrier": "standard", "parcels": len(parcels)}


class NotifyCustomer(Step):
    def execute(self, shipment: dict[str, Any]) -> dict[str, Any]:
        customer = self.context.get("customer_id")
        self.context.set("notified", True)
        return {"customer_id": customer, **shipment}


class ReportFailure(Step):
    def execute(self, failure: dict[str, Any]) -> None:
        self.logger.error("order pipeline halted: %s", failure["error"])


class FulfilOrder(Pipeline):
    definition = (
        start(ValidateOrder)
        .divide([ChargeCard, ReserveStock])
        .combine(PlanShipments)
        .expand(PackParcel)
        .collapse(ChooseCarrier)
        .divert({"express": ExpressCarrier}, otherwise=StandardCarrier)
        .converge(NotifyCustomer)
        .on_halt(ReportFailure)
    )


class HoldStock(Step):
    """Holds the items until the payment arrives; undone when the run fails."""

    def execute(self, order: dict[str, Any]) -> dict[str, Any]:
        hold = f"hold-{order['customer_id']}-{self.run.id}"
        self.context.set("hold_id", hold)
        return {"hold": hold, "total": sum(i["price"] * i["qty"] for i in order["items"])}

    def compensate(self, output: dict[str, Any]) -> None:
        self.context.set("hold_released", output["hold"])


class AwaitPayment(Step):
    def execute(self, hold: dict[str, Any]) -> WaitForEvent:
        # The run waits (no worker is busy) until someone sends the "payment" event:
        # `manage.py pipelines send-event RUN payment --payload '{"approved": true}'`,
        # the run page's event form, or the demo command itself.
        return WaitForEvent(PAYMENT_EVENT, timeout=3600)


class CapturePayment(Step):
    retries = 0  # a declined payment stays declined

    def execute(self, payment: dict[str, Any]) -> dict[str, Any]:
        if not payment.get("approved"):
            raise ValueError(f"payment declined: {payment.get('reason', 'no reason given')}")
        self.context.set("payment_id", payment["payment_id"])
        return {"paid": True, "payment_id": payment["payment_id"]}


PAYMENT_EVENT = "payment"


class PayForOrder(Pipeline):
    """An event wait and a compensation: a declined payment fails the run, and the stock
    hold is released by HoldStock.compensate."""

    definition = start(HoldStock).chain(AwaitPayment).chain(CapturePayment)
