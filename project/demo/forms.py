from __future__ import annotations

from typing import Any

from django import forms


class OrderForm(forms.Form):
    customer_id = forms.IntegerField(min_value=1, initial=7)
    skus = forms.CharField(
        initial="A1, B2, C3",
        help_text="Comma-separated SKUs; each becomes an expanded PackParcel step.",
        max_length=500,
    )
    price = forms.IntegerField(min_value=0, initial=1250, help_text="Unit price in cents.")
    fail_validation = forms.BooleanField(
        required=False, help_text="Send an empty order: ValidateOrder fails, the run halts."
    )

    def order(self) -> dict[str, Any]:
        data = self.cleaned_data
        skus = [s.strip() for s in data["skus"].split(",") if s.strip()]
        items = (
            []
            if data["fail_validation"]
            else [{"sku": sku, "price": data["price"], "qty": 1} for sku in skus]
        )
        return {"customer_id": data["customer_id"], "items": items}
