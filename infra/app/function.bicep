// The function app on the Flex Consumption plan: Python 3.11, deployed by azd with a remote build
// from the blob container `deploymentContainer`, running as the user-assigned identity. The
// runtime lives in functionAppConfig: Flex Consumption refuses FUNCTIONS_WORKER_RUNTIME and
// FUNCTIONS_EXTENSION_VERSION as app settings.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param blobEndpoint string
param deploymentContainer string
param appInsightsConnectionString string
param keyVaultName string
@description('The live stream\'s Web PubSub hub (app/webpubsub-hub.bicep).')
param webPubSubHub string
@description('Non-secret settings from infra/settings.json (limits, supplier ids, legal details).')
param appSettings object
@description('The optional secret settings whose Key Vault secret is set (infra/settings.json).')
param vaultSecrets array
param instanceMemoryMB int
param maximumInstanceCount int

// Secret settings: always Key Vault references, never plain values. The secret is named after
// the setting: QCOS_IBM_TOKEN -> qcos-ibm-token.
// - written by this template, so always wired (core/keyvault.bicep, core/webpubsub.bicep):
var managedSecrets = [
  'QCOS_ADMIN_API_KEY'
  'QCOS_WEBPUBSUB_CONNECTION_STRING'
]
// - set by the operator; wired only once listed in vaultSecrets, since a reference to a missing
//   secret would hand the app the reference text instead of "not configured".
var optionalSecrets = [
  'QCOS_LICENSE'
  'QCOS_LEDGER_SIGNING_KEY'
  'QCOS_IBM_TOKEN'
  'QCOS_AZURE_QUANTUM_CONNECTION_STRING'
  'QCOS_BRAKET_ACCESS_KEY_ID'
  'QCOS_BRAKET_SECRET_ACCESS_KEY'
  'QCOS_BRAKET_SESSION_TOKEN'
  'QCOS_RERANK_EMBEDDINGS_KEY'
]
var wiredSecrets = concat(managedSecrets, filter(optionalSecrets, setting => contains(vaultSecrets, setting)))
var secretReferences = toObject(
  wiredSecrets,
  setting => setting,
  setting => '@Microsoft.KeyVault(VaultName=${keyVaultName};SecretName=${toLower(replace(setting, '_', '-'))})'
)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  // azd finds the service it deploys by this tag (azure.yaml: services.api).
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainer}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// Every app setting, replaced as a whole on each provision. Later objects win, so neither
// settings.json nor a secret can override the platform's settings.
resource siteSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: site
  name: 'appsettings'
  properties: union(appSettings, secretReferences, {
    // Storage through the identity (shared/config.py StorageSettings; the host reads the same).
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    // Telemetry with Entra ID: Application Insights refuses its instrumentation key.
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    // The app serves GET / itself (routePrefix "").
    AzureWebJobsDisableHomepage: 'true'
    // Azure Quantum with a resource id signs in as this identity.
    QCOS_AZURE_QUANTUM_CLIENT_ID: identityClientId
    // The hub whose event handler is this app (its connection string is a secret above).
    QCOS_WEBPUBSUB_HUB: webPubSubHub
  })
}

output name string = site.name
output hostName string = site.properties.defaultHostName
output uri string = 'https://${site.properties.defaultHostName}'
