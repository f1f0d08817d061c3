"""A small order-fulfilment pipeline that uses every transition and the context."""

from __future__ import annotations

from typing import Any

from pipelines import Pipeline, Route, Step, start


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
